/* The search page: plain words in, keyframes out (GET search, GET search/similar/{id}); the
   query and filters live in the page's URL, so a search can be reloaded, shared and gone back to. */
"use strict";

(() => {
  const { el } = vsa;
  const FILTERS = ["camera", "class", "alert_kind", "since", "until", "k"];
  const form = document.getElementById("search-form");
  const results = document.getElementById("results");

  function filtersOf(values) {
    const picked = {};
    for (const name of FILTERS) if (values[name]) picked[name] = values[name];
    return picked;
  }

  /** The thumbnail: the frame from Kafka; once that is gone, the caption's own thumbnail. */
  function thumbnail(hit) {
    const img = el("img", { src: vsa.frameUrl(hit.frame), alt: hit.caption, loading: "lazy", decoding: "async" });
    img.addEventListener("error", () => {
      if (hit.thumbnail_jpeg_b64 && !img.src.startsWith("data:")) {
        img.src = `data:image/jpeg;base64,${hit.thumbnail_jpeg_b64}`;
      } else {
        img.closest(".thumb").classList.add("missing");
      }
    });
    return el("div", { class: "thumb" }, img);
  }

  function groupNote(hit) {
    if (hit.count <= 1) return null;
    const span = (Date.parse(hit.last_capture_time) - Date.parse(hit.first_capture_time)) / 1000;
    return el("span", {
      class: "tag dup",
      title: `${hit.count} near-identical keyframes of this scene, folded into one`,
      text: `×${hit.count} over ${Math.max(1, Math.round(span))} s`,
    });
  }

  function card(hit) {
    const open = () => showHit(hit);
    return el("article", {
      class: "hit", tabindex: "0", dataset: { hitId: hit.id }, onclick: open,
      onkeydown: (event) => { if (event.key === "Enter") open(); },
    },
      thumbnail(hit),
      el("div", { class: "hit-body" },
        el("p", { class: "caption", text: hit.caption, title: hit.caption }),
        el("p", { class: "meta" },
          el("strong", { text: hit.camera_id }), " · ",
          el("time", { datetime: hit.capture_time, text: vsa.when(hit.capture_ts) }),
          el("span", { class: "score", title: "score", text: hit.score.toFixed(3) })),
        el("p", { class: "tags" },
          hit.classes.map((name) => el("span", { class: "tag", text: name })),
          hit.alert_kinds.map((kind) => el("span", { class: `tag kind k-${kind}`, text: vsa.kindLabel(kind) })),
          groupNote(hit))));
  }

  function showHit(hit) {
    const more = el("button", {
      type: "button", text: "More like this",
      onclick: () => { vsa.closeFrame(); navigate({ ...filtersOf(current()), like: hit.id }); },
    });
    vsa.openFrame({
      ref: hit.frame,
      title: `${hit.camera_id} · frame ${hit.frame_seq}`,
      lines: [
        el("span", { class: "caption-full", text: hit.caption }),
        `${vsa.when(hit.capture_ts)} · score ${hit.score.toFixed(3)}` +
          (hit.count > 1 ? ` · ${hit.count} keyframes from ${vsa.when(Date.parse(hit.first_capture_time) / 1000)} to ${vsa.when(Date.parse(hit.last_capture_time) / 1000)}` : ""),
        `objects: ${hit.classes.join(", ") || "none"} · tracks: ${hit.track_ids.join(", ") || "none"}` +
          (hit.alert_kinds.length ? ` · alerts: ${hit.alert_kinds.map(vsa.kindLabel).join(", ")}` : ""),
      ],
      actions: [more],
    });
  }

  function current() {
    return Object.fromEntries(new URLSearchParams(location.search).entries());
  }

  /** Put a search in the URL (a new history entry) and run it. */
  function navigate(params) {
    history.pushState(null, "", vsa.query(params) || location.pathname);
    run();
  }

  async function run() {
    const params = current();
    const filters = filtersOf(params);
    if (!params.q && !params.like) {
      results.replaceChildren();
      return;
    }
    vsa.banner("");
    vsa.status(params.like ? `Looking for keyframes like ${params.like}…` : "Searching…");
    results.setAttribute("aria-busy", "true");
    try {
      const body = params.like
        ? await vsa.getJson(`search/similar/${encodeURIComponent(params.like)}`, filters)
        : await vsa.getJson("search", { q: params.q, ...filters });
      render(body, params);
    } catch (err) {
      results.replaceChildren();
      vsa.status("");
      vsa.banner(`Search failed: ${err.message}`);
    } finally {
      results.removeAttribute("aria-busy");
    }
  }

  function render(body, params) {
    const hits = body.hits;
    const folded = hits.reduce((n, hit) => n + hit.count - 1, 0);
    const summary = `${hits.length} hit${hits.length === 1 ? "" : "s"} in ${Math.round(body.took_ms)} ms` +
      (folded ? ` (${folded} near-duplicate keyframe${folded === 1 ? "" : "s"} folded)` : "");
    const status = document.getElementById("status");
    if (params.like) {
      const back = el("a", { href: "#", text: "back", onclick: (event) => { event.preventDefault(); history.back(); } });
      status.replaceChildren(`Keyframes like ${params.like}: ${summary} · `, back);
    } else {
      status.textContent = hits.length ? summary : "No keyframe matches; try other words or fewer filters.";
    }
    results.replaceChildren(...hits.map(card));
  }

  /** The search the address names: on opening the page, and on back and forward. The form is
      left as it is when the address names none (what was typed meanwhile stays). */
  function fromAddress() {
    const params = new URLSearchParams(location.search);
    if ([...params.keys()].length) {
      form.reset(); // fields the address leaves out go back to their defaults
      vsa.fillForm(form, params);
    }
    run();
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    navigate(vsa.formValues(form));
  });
  window.addEventListener("popstate", fromAddress);

  fromAddress();
  vsa.fillKinds(current().alert_kind || "");
  vsa.fillCameraList();
})();
