/* vsa console: what every page shares. Plain browser JavaScript, no framework, nothing loaded
   from anywhere but this server. The API is called with relative URLs, so the console works
   wherever the API is served (behind a proxy path too). */
"use strict";

const vsa = (() => {
  /** Alert kinds when the OpenAPI document cannot be read. */
  const FALLBACK_KINDS = ["zone_intrusion", "line_crossing", "loitering", "crowding"];

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  /** An element with properties (class, text, dataset, attributes, handlers) and children. */
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name === "dataset") Object.assign(node.dataset, value);
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** URL query from an object: empty values left out, arrays repeated. */
  function query(params = {}) {
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(params)) {
      for (const item of Array.isArray(value) ? value : [value]) {
        if (item !== undefined && item !== null && String(item).trim() !== "") {
          search.append(name, String(item).trim());
        }
      }
    }
    const text = search.toString();
    return text ? `?${text}` : "";
  }

  /** GET a JSON body of the API; ApiError with the API's one-line message otherwise. */
  async function getJson(path, params = {}) {
    let response;
    try {
      response = await fetch(path + query(params), { headers: { Accept: "application/json" } });
    } catch (err) {
      throw new ApiError(0, "the console's server does not answer");
    }
    if (!response.ok) {
      let message = `${response.status} ${response.statusText}`;
      try {
        const body = await response.json();
        if (body && body.error) message = body.error;
      } catch (err) {
        /* not JSON: keep the status line */
      }
      throw new ApiError(response.status, message);
    }
    return response.json();
  }

  /** The URL of a frame by its reference (a hit's frame, an alert's snapshot frame). */
  function frameUrl(ref, boxes = false) {
    const path = ["frames", encodeURIComponent(ref.topic), ref.partition, ref.offset].join("/");
    return path + query({ camera_id: ref.camera_id, frame_seq: ref.frame_seq, boxes: boxes ? "true" : "" });
  }

  const clock = { hour: "numeric", minute: "2-digit", second: "2-digit" };
  const thisYear = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", ...clock });
  const otherYear = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric", ...clock });

  /** Local date and time of a UNIX time in seconds (the year only when it is not this one). */
  function when(ts) {
    const date = new Date(ts * 1000);
    const format = date.getFullYear() === new Date().getFullYear() ? thisYear : otherYear;
    return format.format(date);
  }

  /** "12 s ago", "3 min ago", "2 h ago", "4 d ago". */
  function ago(seconds) {
    const s = Math.max(0, seconds);
    if (s < 60) return `${Math.round(s)} s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  }

  function kindLabel(kind) {
    return kind.replaceAll("_", " ");
  }

  /** A one-line message over the page (error, or a part of the API that is not configured). */
  function banner(message, kind = "error") {
    const node = document.getElementById("banner");
    if (!node) return;
    node.hidden = !message;
    node.textContent = message || "";
    node.dataset.kind = kind;
  }

  function status(text) {
    const node = document.getElementById("status");
    if (node) node.textContent = text;
  }

  /** The alert kinds the API knows, from its OpenAPI document. */
  async function alertKinds() {
    try {
      const doc = await getJson("openapi.json");
      const schemas = doc.components.schemas;
      let kind = schemas.Alert.properties.kind;
      if (kind.$ref) kind = schemas[kind.$ref.split("/").pop()];
      if (kind.allOf && kind.allOf[0].$ref) kind = schemas[kind.allOf[0].$ref.split("/").pop()];
      if (Array.isArray(kind.enum) && kind.enum.length) return kind.enum;
    } catch (err) {
      /* the fallback below */
    }
    return FALLBACK_KINDS;
  }

  /** Fill every <select data-kinds> with the alert kinds, keeping its current value. */
  async function fillKinds(selected) {
    const kinds = await alertKinds();
    for (const select of document.querySelectorAll("select[data-kinds]")) {
      for (const kind of kinds) select.append(el("option", { value: kind, text: kindLabel(kind) }));
      if (selected !== undefined) select.value = selected;
    }
  }

  /** Camera ids for the camera filters' suggestions (configured or seen by the API). */
  async function fillCameraList() {
    const list = document.getElementById("camera-list");
    if (!list) return;
    try {
      const body = await getJson("cameras");
      list.replaceChildren(...body.cameras.map((c) => el("option", { value: c.camera_id })));
    } catch (err) {
      /* suggestions only */
    }
  }

  /** An image of a frame with a highlighted box (pixels of the original image) drawn over it. */
  function boxedImage(src, xyxy, alt) {
    const img = el("img", { src, alt, loading: "lazy", decoding: "async" });
    const box = el("div", { class: "box", hidden: true });
    img.addEventListener("load", () => {
      const [x1, y1, x2, y2] = xyxy || [];
      const w = img.naturalWidth;
      const h = img.naturalHeight;
      if (!xyxy || !w || !h) return;
      Object.assign(box.style, {
        left: `${(100 * x1) / w}%`, top: `${(100 * y1) / h}%`,
        width: `${(100 * (x2 - x1)) / w}%`, height: `${(100 * (y2 - y1)) / h}%`,
      });
      box.hidden = false;
    });
    img.addEventListener("error", () => img.closest(".frame")?.classList.add("missing"));
    return el("div", { class: "frame" }, img, box);
  }

  let dialog = null;

  /** The full frame with its tracked boxes in a dialog, with lines of text and actions under it. */
  function openFrame({ ref, title, lines = [], actions = [] }) {
    if (!dialog) {
      dialog = el("dialog", { id: "frame-dialog", class: "frame-dialog" });
      dialog.addEventListener("click", (event) => {
        if (event.target === dialog) dialog.close(); // a click on the backdrop
      });
      document.body.append(dialog);
    }
    const img = el("img", { src: frameUrl(ref, true), alt: title, class: "full" });
    const missing = el("p", { class: "note", hidden: true, text: "The frame is no longer in Kafka (the frames topic keeps about an hour)." });
    img.addEventListener("error", () => { img.hidden = true; missing.hidden = false; });
    dialog.replaceChildren(
      el("div", { class: "dialog-head" },
        el("h2", { text: title }),
        el("button", { type: "button", class: "close", "aria-label": "Close", onclick: () => dialog.close() }, "×")),
      img, missing,
      el("div", { class: "dialog-body" },
        lines.map((line) => el("p", {}, line)),
        actions.length ? el("div", { class: "actions" }, actions) : null),
    );
    dialog.showModal();
    return dialog;
  }

  function closeFrame() {
    if (dialog && dialog.open) dialog.close();
  }

  /** The console's pages, in the order of the navigation. */
  const PAGES = [["search", "./", "Search"], ["alerts", "alerts.html", "Alerts"], ["cameras", "cameras.html", "Cameras"]];

  /** The header every page has: the name and the navigation, the current page marked. */
  function header() {
    const page = document.body.dataset.page;
    const links = PAGES.map(([name, href, text]) =>
      el("a", { href, text, "aria-current": name === page ? "page" : null }));
    const api = el("a", { href: "docs", class: "aside", title: "The HTTP API (OpenAPI)", text: "API" });
    document.querySelector("header.top").replaceChildren(
      el("a", { class: "brand", href: "./" }, "vsa ", el("span", { text: "console" })),
      el("nav", {}, links, api));
  }

  /** The form's fields as an object (empty ones left out). */
  function formValues(form) {
    const values = {};
    for (const [name, value] of new FormData(form).entries()) {
      if (String(value).trim() !== "") values[name] = String(value).trim();
    }
    return values;
  }

  /** Set a form's fields from URL parameters (those it has). */
  function fillForm(form, params) {
    for (const [name, value] of params.entries()) {
      const field = form.elements.namedItem(name);
      if (field && "value" in field) field.value = value;
    }
  }

  document.addEventListener("DOMContentLoaded", header);

  return {
    ApiError, el, query, getJson, frameUrl, when, ago, kindLabel, banner, status, fillKinds,
    fillCameraList, boxedImage, openFrame, closeFrame, formValues, fillForm,
  };
})();
