/* The cameras page: every camera configured (camera-config) or seen by the API, with its state,
   rates over the API's window and last alert (GET cameras), redrawn every few seconds. */
"use strict";

(() => {
  const { el } = vsa;
  const REFRESH_MS = 3000;
  const table = document.getElementById("cameras");
  const body = table.querySelector("tbody");

  function state(camera) {
    if (camera.enabled === false) return ["disabled", "disabled"];
    if (camera.live) return ["live", "live"];
    if (camera.last_seen_s !== null) return ["idle", `idle, last seen ${vsa.ago(camera.last_seen_s)}`];
    return ["waiting", camera.config ? "configured, no data yet" : "no data"];
  }

  function rate(value) {
    return value === null || value === undefined ? "–" : value.toFixed(1);
  }

  function topClasses(classes) {
    const top = Object.entries(classes).sort((a, b) => b[1] - a[1]).slice(0, 3);
    return top.length ? top.map(([name, n]) => `${name} ${n.toFixed(1)}/s`).join(", ") : "–";
  }

  const alertCells = new Map(); // alert_id -> its cell's content, kept across redraws

  /** A camera's last alert: kept from the last redraw when it is the same (no image reload). */
  function lastAlert(alert) {
    if (!alert) return el("span", { class: "muted", text: "none" });
    const node = alertCells.get(alert.alert_id) || alertCell(alert);
    alertCells.set(alert.alert_id, node);
    node.querySelector(".ago").textContent = vsa.ago(Date.now() / 1000 - alert.ts);
    return node;
  }

  function alertCell(alert) {
    const title = `${vsa.kindLabel(alert.kind)} · ${alert.camera_id} · frame ${alert.frame_seq}`;
    const open = () => vsa.openFrame({
      ref: alert.snapshot.frame,
      title,
      lines: [`${vsa.when(alert.ts)} · rule ${alert.rule_id} · ${alert.class_name} · tracks ${alert.track_ids.join(", ")}`],
    });
    return el("button", { type: "button", class: "last-alert", title: "Show the frame", onclick: open },
      vsa.boxedImage(vsa.frameUrl(alert.snapshot.frame), alert.snapshot.xyxy, title),
      el("span", {},
        el("span", { class: `tag kind k-${alert.kind}`, text: vsa.kindLabel(alert.kind) }),
        el("span", { class: "ago", text: vsa.ago(Date.now() / 1000 - alert.ts) })));
  }

  function row(camera) {
    const [name, text] = state(camera);
    const source = camera.config && camera.config.source_url;
    return el("tr", { dataset: { camera: camera.camera_id, state: name } },
      el("td", {}, el("strong", { text: camera.camera_id }),
        camera.config && camera.config.fps_target ? el("div", { class: "muted", text: `target ${camera.config.fps_target} fps` }) : null,
        source ? el("div", { class: "muted source", title: source, text: source }) : null),
      el("td", {}, el("span", { class: `state s-${name}`, text })),
      el("td", { class: "num", text: rate(camera.rates.frames) }),
      el("td", { class: "num", text: rate(camera.rates.objects) }),
      el("td", { class: "num", text: rate(camera.rates.tracks) }),
      el("td", { class: "classes", text: topClasses(camera.rates.classes) }),
      el("td", { class: "num", text: String(camera.counts.alerts) }),
      el("td", {}, lastAlert(camera.last_alert)));
  }

  async function refresh() {
    try {
      const answer = await vsa.getJson("cameras");
      const warnings = answer.warnings || [];
      vsa.banner(warnings.join("; "), "warning");
      body.replaceChildren(...answer.cameras.map(row));
      const shown = new Set(answer.cameras.map((c) => c.last_alert && c.last_alert.alert_id));
      for (const id of alertCells.keys()) if (!shown.has(id)) alertCells.delete(id);
      table.hidden = answer.cameras.length === 0;
      vsa.status(answer.cameras.length
        ? `${answer.cameras.length} camera${answer.cameras.length === 1 ? "" : "s"}; rates per second over the last ${Math.round(answer.window_s)} s, alerts since the API started`
        : "No camera configured or seen yet.");
    } catch (err) {
      vsa.banner(`Cameras: ${err.message}`, err.status === 503 ? "warning" : "error");
    }
  }

  refresh();
  setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
})();
