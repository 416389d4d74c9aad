"""`python -m sdenhance.testing tiny-model DIR ...`: build a tiny random-weight model."""

from sdenhance.testing import main

main()
