"""`sdenhance ui`: a web page served by the `serve` app, over the same job queue and API.

Hand-made (static HTML, CSS and plain JavaScript modules in `static/`, shipped as package data,
no build step) rather than Gradio, after trying Gradio 6.31: it does run offline with a
system-font theme and analytics off, and its ImageEditor has a brush with undo and its
ImageSlider a before/after view. It falls short where this server draws its lines:

- the token: every request must carry `Authorization: Bearer`, but Gradio's own front end
  cannot add a header to its calls; it would need a second, cookie-based login beside the
  server's token check;
- errors: the server's one-line message must sit next to the option it names, where Gradio
  shows errors as toasts;
- the queue: Gradio runs handlers in its own queue, so jobs would be queued twice, and the
  page would not see the server's progress, ETA and cancel as every other client does;
- weight: a large extra for a page of a few hundred lines.

The page therefore talks to `/api/v1` with `fetch` like any client (the token from the page's
address `#token=...` or a prompt, kept in the tab's session storage), reads job events from a
streamed `fetch` (EventSource cannot send headers), and builds every form from
`/api/v1/stages`, which reads each stage's `Options` (help, bounds, choices, default).

    schema.py   tabs and the option schema of their stages, from `Options` field metadata
    command.py  the `sdenhance` command line that reproduces a saved result
    routes.py   /api/v1/stages and /api/v1/jobs/{id}/info (infotext, record, command)
    app.py      the serve app plus the page: the static shell public, the API behind the token
    static/     index.html, style.css, js/ (api, form, mask, compare, run, history, main)
"""
