/* pml-risk launch page: charts, the what-if updates and "Save to chart".
 *
 * The server computes every figure. This script only draws the charts from the data the server
 * put in data- attributes, asks the server for the re-rendered page regions when a what-if
 * value changes, and posts the save. It never builds HTML from data: the regions it inserts were
 * rendered (and escaped) by the server's templates, and messages are set with textContent.
 */
(function () {
  "use strict";

  var app = document.getElementById("app");
  if (!app) { return; }
  var csrf = document.querySelector('meta[name="csrf-token"]');
  var charts = [];
  var COLORS = ["#1d4ed8", "#b25e00", "#6b21a8", "#0f766e", "#9f1239", "#4d7c0f"];
  var HERE = "#a3120b";

  function $(id) { return document.getElementById(id); }

  function announce(text) {
    var live = $("live");
    if (live) { live.textContent = ""; window.setTimeout(function () { live.textContent = text; }, 50); }
  }

  /* ---- charts --------------------------------------------------------------------------- */

  function num(v) { return v === null || v === undefined ? null : Number(v); }

  function strataConfig(d) {
    var datasets = d.series.map(function (s, i) {
      return {
        label: s.label + (s.current ? " (this patient)" : ""),
        data: s.values.map(num),
        borderColor: s.current ? "#1d2433" : COLORS[i % COLORS.length],
        backgroundColor: s.current ? "#1d2433" : COLORS[i % COLORS.length],
        borderWidth: s.current ? 4 : 1.5,
        borderDash: s.current ? [] : [6, 4],
        pointRadius: s.current ? 4 : 2.5,
        spanGaps: false,
        order: s.current ? 1 : 2
      };
    });
    var here = d.bands.map(function (b) { return b === d.here.band ? num(d.here.value) : null; });
    datasets.push({
      label: "You are here (" + (d.here.whatIf ? "what if: " : "") + d.here.infusions + " infusions)",
      data: here, showLine: false, pointStyle: "triangle", pointRadius: 11, pointHoverRadius: 12,
      borderColor: HERE, backgroundColor: HERE, order: 0
    });
    return {
      type: "line",
      data: { labels: d.bands.map(function (b) { return b + " infusions"; }), datasets: datasets },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        interaction: { mode: "nearest", intersect: false },
        scales: {
          y: { beginAtZero: true, title: { display: true, text: "risk per 1,000" } },
          x: { title: { display: true, text: "completed infusions" } }
        },
        plugins: { legend: { position: "bottom", labels: { boxWidth: 14, font: { size: 11 } } } }
      }
    };
  }

  function day(ms) { return new Date(ms).toISOString().slice(0, 10); }

  function indexConfig(d) {
    var t = function (s) { return Date.parse(s + "T00:00:00Z"); };
    var used = d.points.filter(function (p) { return p.used; })
      .map(function (p) { return { x: t(p.date), y: num(p.index) }; });
    var notUsed = d.points.filter(function (p) { return !p.used; })
      .map(function (p) { return { x: t(p.date), y: num(p.index) }; });
    var xs = d.points.map(function (p) { return t(p.date); });
    if (d.override) { xs.push(t(d.override.date)); }
    var lo = Math.min.apply(null, xs), hi = Math.max.apply(null, xs);
    var pad = Math.max((hi - lo) * 0.05, 15 * 864e5);
    lo -= pad; hi += pad;
    var datasets = [
      { label: "index (used)", data: used, showLine: true, borderColor: "#1d4ed8",
        backgroundColor: "#1d4ed8", pointRadius: 4, borderWidth: 2 },
    ];
    if (notUsed.length) {
      datasets.push({ label: "preliminary / not used", data: notUsed, showLine: false,
        borderColor: "#667085", backgroundColor: "#ffffff", pointRadius: 5, borderWidth: 2 });
    }
    if (d.override) {
      datasets.push({ label: "overridden by clinician", data: [{ x: t(d.override.date), y: num(d.override.index) }],
        showLine: false, pointStyle: "rectRot", pointRadius: 8, borderColor: "#6b21a8",
        backgroundColor: "#6b21a8" });
    }
    d.cutoffs.forEach(function (c, i) {
      datasets.push({ label: c.label, data: [{ x: lo, y: c.value }, { x: hi, y: c.value }],
        showLine: true, pointRadius: 0, borderWidth: 1.5, borderDash: i === 0 ? [8, 4] : [3, 3],
        borderColor: i === 0 ? HERE : "#b25e00", backgroundColor: "transparent" });
    });
    return {
      type: "scatter",
      data: { datasets: datasets },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        layout: { padding: { right: 24 } },
        scales: {
          x: { type: "linear", min: lo, max: hi, title: { display: true, text: "date" },
               ticks: { maxTicksLimit: 5, maxRotation: 0, callback: function (v) { return day(v); } } },
          y: { beginAtZero: true, suggestedMax: 2, title: { display: true, text: "index" } }
        },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: 14, font: { size: 11 } } },
          tooltip: { callbacks: { label: function (c) { return day(c.parsed.x) + ": " + c.parsed.y; } } }
        }
      }
    };
  }

  function drawCharts() {
    charts.forEach(function (c) { c.destroy(); });
    charts = [];
    if (typeof window.Chart !== "function") { return; }  // the tables below each chart remain
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var d;
      try { d = JSON.parse(canvas.getAttribute("data-chart")); } catch (e) { return; }
      var config = d.kind === "strata" ? strataConfig(d) : indexConfig(d);
      charts.push(new window.Chart(canvas, config));
    });
    if (window.performance && performance.mark) { performance.mark("pml-charts-drawn"); }
  }

  /* ---- what if -------------------------------------------------------------------------- */

  var form = $("whatif");
  var inflight = null;  // the running update, so a save waits for the result it will write
  var timer = null;
  var seq = 0;

  function formQuery() {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) {
      var v = String(value).trim();
      if (v !== "") { params.append(key, v); }
    });
    return params.toString();
  }

  function swap(html, ids) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    ids.forEach(function (id) {
      var fresh = doc.getElementById(id), old = $(id);
      if (fresh && old) { old.replaceWith(document.importNode(fresh, true)); }
    });
  }

  function showWhatIfError(text) {
    var box = $("whatif-error");
    box.textContent = text || "";
    box.hidden = !text;
  }

  function errorText(html, status) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var alert = doc.querySelector("[role=alert]");
    return alert ? alert.textContent.replace(/\s+/g, " ").trim() : "The update failed (" + status + ").";
  }

  function update(query, ids, note) {
    var mine = ++seq;
    var url = app.getAttribute("data-results-url") + (query ? "?" + query : "");
    form.closest(".whatif").classList.add("updating");
    var run = fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (resp) { return resp.text().then(function (html) { return [resp, html]; }); })
      .then(function (r) {
        if (mine !== seq) { return false; }  // a newer update is on its way
        if (!r[0].ok) {
          showWhatIfError(errorText(r[1], r[0].status));
          announce("Not updated: " + errorText(r[1], r[0].status));
          return false;
        }
        showWhatIfError("");
        swap(r[1], ids);
        drawCharts();
        var page = app.getAttribute("data-page-url") + (query ? "?" + query : "");
        window.history.replaceState(null, "", page);
        var fig = document.querySelector("#summary .risk-figure");
        if (note) { announce(note + (fig ? " " + fig.textContent : "")); }
        return true;
      })
      .catch(function () {
        if (mine === seq) { showWhatIfError("The update failed: the app could not be reached."); }
        return false;
      })
      .then(function (ok) {
        if (mine === seq) { form.closest(".whatif").classList.remove("updating"); inflight = null; }
        return ok;
      });
    inflight = run;
    return run;
  }

  var shownQuery = form ? formQuery() : "";  // the what-if values the page shows now

  function updateNow() {
    window.clearTimeout(timer);
    timer = null;
    var query = formQuery();
    if (query === shownQuery) { return inflight || Promise.resolve(); }  // e.g. change after input
    return update(query, ["summary", "save", "details"], "Result updated:").then(function (ok) {
      if (ok) { shownQuery = query; }
    });
  }

  function scheduleUpdate(delay) {
    window.clearTimeout(timer);
    timer = window.setTimeout(updateNow, delay);
  }

  /* A what-if change not yet shown (typing, or its request on the way) is applied first, so
     the save always writes the result on screen, never an older one. */
  function settled() {
    if (timer !== null) { return updateNow(); }
    return inflight || Promise.resolve();
  }

  if (form) {
    form.addEventListener("submit", function (e) { e.preventDefault(); scheduleUpdate(0); });
    form.addEventListener("change", function () { scheduleUpdate(0); });
    form.addEventListener("input", function (e) {
      if (e.target.tagName === "INPUT") { scheduleUpdate(400); }
    });
    $("whatif-reset").addEventListener("click", function (e) {
      e.preventDefault();
      form.reset();
      form.querySelectorAll("input").forEach(function (i) { i.value = ""; });
      form.querySelectorAll("select").forEach(function (s) { s.value = ""; });
      scheduleUpdate(0);
    });
  }

  /* ---- save ------------------------------------------------------------------------------ */

  var saving = false;

  function status(kind, lines, extra) {
    var box = $("save-status");
    box.className = "save-status " + kind;
    box.replaceChildren();
    lines.forEach(function (line, i) {
      var p = document.createElement("p");
      if (i === 0) { var b = document.createElement("strong"); b.textContent = line; p.appendChild(b); }
      else { p.textContent = line; }
      box.appendChild(p);
    });
    if (extra) { box.appendChild(extra); }
    if (kind !== "pending") { box.focus(); }  // keyboard and screen-reader users land on it
  }

  function fallbackLinks(body) {
    var wrap = document.createElement("p");
    if (body.download) {
      var a = document.createElement("a");
      a.href = body.download;
      a.setAttribute("download", "");
      a.textContent = "Download the RiskAssessment (JSON)";
      wrap.appendChild(a);
      wrap.appendChild(document.createTextNode(" · "));
    }
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = "Copy the summary for a note";
    b.className = "copy-summary";
    wrap.appendChild(b);
    var details = $("fallback");
    if (details) { details.open = true; }
    return wrap;
  }

  function save() {
    var button = $("save-button");
    if (saving || !button || button.disabled) { return; }
    saving = true;
    button.disabled = true;
    settled().then(function () {
      var fresh = $("save-button");
      if (!fresh || fresh.getAttribute("aria-describedby") === "save-reason") {
        saving = false;  // the updated result cannot be saved; its panel says why
        return;
      }
      post($("save"), fresh);
    });
  }

  function post(section, button) {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    status("pending", ["Saving to the chart…"]);
    var body = {
      identifier: section.getAttribute("data-identifier") || null,
      overrides: JSON.parse(section.getAttribute("data-overrides") || "{}")
    };
    fetch(app.getAttribute("data-save-url"), {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json",
                 "X-CSRF-Token": csrf ? csrf.getAttribute("content") : "" },
      body: JSON.stringify(body)
    })
      .then(function (resp) {
        return resp.json().catch(function () { return { saved: false, message: "The app answered " + resp.status + "." }; })
          .then(function (data) { return [resp, data]; });
      })
      .then(function (r) {
        var data = r[1];
        if (r[0].ok && data.saved === true && data.id) {
          var when = data.savedAt ? new Date(data.savedAt).toLocaleString() : "";
          status("ok", [
            data.created ? "Saved to the chart." : "Already in the chart: nothing new was created.",
            "RiskAssessment/" + data.id + (when ? " · " + when : "")
          ]);
          button.textContent = "Saved";
          announce(data.created ? "Saved to the chart." : "Already in the chart.");
          var query = new URLSearchParams(body.overrides).toString();
          update(query, ["history"], null);
          return;
        }
        var lines = [data.title || "Not saved", data.message || data.detail || "The save failed."];
        if (data.error === "csrf") { lines.push("Reload the page and try again."); }
        if (data.error === "changed") {
          status("failed", lines);
          scheduleUpdate(0);
          return;
        }
        status("failed", lines, data.download || data.summary ? fallbackLinks(data) : null);
        if (data.retryable) { button.textContent = "Retry save"; button.disabled = false; }
        announce("Not saved. " + (data.message || ""));
      })
      .catch(function () {
        status("failed", ["Not saved", "The app could not be reached; the save is not confirmed. Retry: it cannot create a duplicate."]);
        button.textContent = "Retry save";
        button.disabled = false;
      })
      .then(function () { saving = false; button.removeAttribute("aria-busy"); });
  }

  function copySummary(trigger) {
    var area = $("summary-text");
    if (!area) { return; }
    var done = function (ok) {
      var s = $("copy-status");
      if (s) { s.textContent = ok ? "Copied." : "Select the text and copy it (Ctrl+C)."; }
      if (!ok) { area.focus(); area.select(); }
    };
    var details = $("fallback");
    if (details) { details.open = true; }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(area.value).then(function () { done(true); }, function () { done(false); });
    } else {
      area.focus(); area.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      done(ok);
    }
    if (trigger) { trigger.blur(); area.focus(); }
  }

  document.addEventListener("click", function (e) {
    var t = e.target;
    if (!(t instanceof Element)) { return; }
    if (t.id === "save-button") { save(); }
    else if (t.id === "copy-summary" || t.classList.contains("copy-summary")) { copySummary(t.id === "copy-summary" ? null : t); }
  });

  drawCharts();
})();
