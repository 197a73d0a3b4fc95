/* The alerts page: the newest alerts of the history (GET alerts), then every new one as it
   happens (GET alerts/stream, server-sent events; the browser reconnects by itself and sends the
   last alert id it saw, so the server replays what it kept since). Filters: camera and kind. */
"use strict";

(() => {
  const { el } = vsa;
  const MAX_ROWS = 200;
  const HISTORY = 50;
  const RETRY_MS = 5000;
  const form = document.getElementById("alert-filters");
  const list = document.getElementById("alerts");
  const live = document.getElementById("live");
  const rows = new Map(); // alert_id -> {alert, node}
  let source = null;
  let retry = null;
  let generation = 0; // a newer filter wins over the answers of an older one

  function setLive(state, text) {
    live.dataset.state = state;
    live.textContent = text;
  }

  /** A rule's specifics in words: zone_id plaza -> "zone plaza", dwell_s 12.3 -> "dwell 12.3 s". */
  function details(alert) {
    return Object.entries(alert.details || {})
      .filter(([name]) => name !== "episode")
      .map(([name, value]) => {
        const number = typeof value === "number" ? +value.toFixed(2) : value;
        const shown = typeof number === "string" ? number.replaceAll("_", " ") : number;
        if (name.endsWith("_id")) return `${name.slice(0, -3)} ${value}`;
        if (name.endsWith("_s")) return `${name.slice(0, -2).replaceAll("_", " ")} ${shown} s`;
        return `${name.replaceAll("_", " ")} ${shown}`;
      });
  }

  function row(alert, fresh) {
    const title = `${vsa.kindLabel(alert.kind)} · ${alert.camera_id} · frame ${alert.frame_seq}`;
    const snapshot = vsa.boxedImage(vsa.frameUrl(alert.snapshot.frame), alert.snapshot.xyxy, title);
    const open = () => vsa.openFrame({
      ref: alert.snapshot.frame,
      title,
      lines: [
        `${vsa.when(alert.ts)} · rule ${alert.rule_id} · ${alert.class_name} · tracks ${alert.track_ids.join(", ")}`,
        details(alert).join(" · ") || null,
        `alert ${alert.alert_id}`,
      ].filter(Boolean),
    });
    const ago = el("span", { class: "ago", dataset: { ts: alert.ts }, text: vsa.ago(Date.now() / 1000 - alert.ts) });
    return el("article", {
      class: `alert${fresh ? " fresh" : ""}`, tabindex: "0",
      dataset: { alertId: alert.alert_id, camera: alert.camera_id, kind: alert.kind },
      onclick: open, onkeydown: (event) => { if (event.key === "Enter") open(); },
    },
      snapshot,
      el("div", { class: "alert-body" },
        el("p", { class: "headline" },
          el("span", { class: `tag kind k-${alert.kind}`, text: vsa.kindLabel(alert.kind) }),
          el("strong", { text: alert.camera_id }),
          el("span", { class: "rule", text: `rule ${alert.rule_id}` })),
        el("p", { class: "meta" },
          `${alert.class_name} · track${alert.track_ids.length > 1 ? "s" : ""} ${alert.track_ids.join(", ")}`,
          details(alert).length ? ` · ${details(alert).join(" · ")}` : ""),
        el("p", { class: "meta" }, el("time", { text: vsa.when(alert.ts) }), " · ", ago)));
  }

  /** Add an alert in time order (newest first); an alert seen before is not shown twice. */
  function add(alert, fresh) {
    if (rows.has(alert.alert_id)) return;
    const node = row(alert, fresh);
    const after = [...rows.values()].find((other) => other.alert.ts < alert.ts);
    list.insertBefore(node, after ? after.node : null);
    rows.set(alert.alert_id, { alert, node });
    while (rows.size > MAX_ROWS) {
      const oldest = [...rows.values()].reduce((a, b) => (a.alert.ts <= b.alert.ts ? a : b));
      oldest.node.remove();
      rows.delete(oldest.alert.alert_id);
    }
    showCount();
  }

  function showCount() {
    vsa.status(rows.size ? `${rows.size} alert${rows.size === 1 ? "" : "s"}, newest first` : "No alerts yet; new ones appear here as they happen.");
  }

  function filters() {
    const values = vsa.formValues(form);
    return { camera: values.camera, kind: values.kind };
  }

  async function loadHistory(wanted, asked) {
    try {
      const body = await vsa.getJson("alerts", { ...wanted, limit: HISTORY });
      if (asked !== generation) return;
      for (const alert of body.alerts) add(alert, false);
      vsa.banner("");
    } catch (err) {
      if (asked !== generation) return;
      vsa.banner(`Alert history: ${err.message}`, err.status === 503 ? "warning" : "error");
    }
    showCount();
  }

  function connect(wanted) {
    clearTimeout(retry);
    if (source) source.close();
    setLive("connecting", "connecting");
    source = new EventSource(`alerts/stream${vsa.query(wanted)}`);
    source.addEventListener("open", () => setLive("live", "live"));
    source.addEventListener("alert", (event) => add(JSON.parse(event.data), true));
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        // refused (e.g. 503: no live stream here); the browser gives up, so try again later
        setLive("offline", "offline, retrying");
        retry = setTimeout(() => {
          connect(wanted);
          loadHistory(wanted, generation); // what was indexed meanwhile (shown once)
        }, RETRY_MS);
      } else {
        setLive("connecting", "reconnecting");
      }
    });
  }

  function start() {
    const wanted = filters();
    history.replaceState(null, "", vsa.query(wanted) || location.pathname);
    rows.clear();
    list.replaceChildren();
    generation += 1;
    connect(wanted);
    loadHistory(wanted, generation);
  }

  form.addEventListener("change", start);
  form.addEventListener("submit", (event) => { event.preventDefault(); start(); });
  setInterval(() => {
    for (const node of list.querySelectorAll(".ago")) {
      node.textContent = vsa.ago(Date.now() / 1000 - Number(node.dataset.ts));
    }
  }, 10000);

  const params = new URLSearchParams(location.search);
  vsa.fillForm(form, params);
  vsa.fillKinds(params.get("kind") || "").then(start);
  vsa.fillCameraList();
})();
