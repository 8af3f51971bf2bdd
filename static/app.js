/* pml-risk launch page: charts, the what-if updates and "Save to chart".
 *
 * The server computes every figure. This script only draws the charts from the data the server
 * put in data- attributes, asks the server for the re-rendered page regions when a what-if
 * value changes, and posts the save. It never builds HTML from data: the regions it inserts were
 * rendered (and escaped) by the server's templates, and messages are set with textContent.
 */
(function () {
  "use strict";

  /* ---- print (the page and the patient handout) ----------------------------------------- */

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  var printButton = document.getElementById("print-button");
  if (printButton) {
    printButton.hidden = false;  // printing needs the script; the browser's own menu needs none
    printButton.addEventListener("click", function () { window.print(); });
  }
  window.addEventListener("beforeprint", function () {
    var at = document.getElementById("printed-at"), now = new Date();
    if (at) {
      at.textContent = now.getFullYear() + "-" + pad(now.getMonth() + 1) + "-" + pad(now.getDate()) +
        " " + pad(now.getHours()) + ":" + pad(now.getMinutes());
    }
  });

  document.documentElement.classList.remove("no-js");  // charts are drawn, saves post here
  var app = document.getElementById("app");
  if (!app) { return; }
  var csrf = document.querySelector('meta[name="csrf-token"]');
  var charts = [];

  function $(id) { return document.getElementById(id); }

  function announce(text) {
    var live = $("live");
    if (live) { live.textContent = ""; window.setTimeout(function () { live.textContent = text; }, 50); }
  }

  /* ---- charts --------------------------------------------------------------------------- */
  /* Every mark's colour, dash, width and marker comes from the server's "style" (charts.py),
     the same values the legend under each chart is drawn from. Chart.js's own legend is off. */

  function num(v) { return v === null || v === undefined ? null : Number(v); }

  /* A bound (">1.5"): an arrow that starts at the bound and points the way the true value
     lies. Chart.js centres a canvas marker on the point, so the arrow fills one half. */
  function arrow(style) {
    var r = style.radius, up = style.marker === "arrowUp";
    var c = document.createElement("canvas");
    c.width = 2 * r + 2; c.height = 4 * r + 2;
    c.dataset.marker = style.marker;
    var g = c.getContext("2d"), mid = 2 * r + 1, tip = up ? 1 : 4 * r + 1;
    var base = up ? tip + r : tip - r;
    g.strokeStyle = g.fillStyle = style.color;
    g.lineWidth = 2;
    g.beginPath(); g.moveTo(r + 1, mid); g.lineTo(r + 1, base); g.stroke();
    g.beginPath(); g.moveTo(r + 1, tip); g.lineTo(2 * r + 1, base); g.lineTo(1, base);
    g.closePath(); g.fill();
    return c;
  }

  function marks(style) {
    var open = style.marker === "circleOpen";
    if (style.marker === "arrowUp" || style.marker === "arrowDown") {
      return { borderColor: style.color, backgroundColor: style.color, borderWidth: 0,
               borderDash: [], showLine: false, pointStyle: arrow(style),
               pointRadius: style.radius, pointHoverRadius: style.radius };
    }
    return {
      borderColor: style.color,
      backgroundColor: open ? "#ffffff" : style.color,
      borderWidth: style.width,
      borderDash: style.dash,
      showLine: style.width > 0,
      pointStyle: style.marker === "none" ? false : (open ? "circle" : style.marker),
      pointRadius: style.marker === "none" ? 0 : style.radius,
      pointHoverRadius: style.marker === "none" ? 0 : style.radius + 1,
      pointBorderWidth: open || style.marker === "crossRot" ? 2 : 1,
      pointBorderColor: style.color,
      pointBackgroundColor: open ? "#ffffff" : style.color
    };
  }

  function dataset(label, data, style, extra) {
    return Object.assign({ label: label, data: data }, marks(style), extra || {});
  }

  function fontFamily() {
    return window.getComputedStyle(document.body).fontFamily;
  }

  function narrow() { return window.matchMedia("(max-width: 480px)").matches; }

  function strataConfig(d) {
    var datasets = d.series.map(function (s) {
      return dataset(s.label, s.values.map(num), s.style,
                     { spanGaps: false, order: s.current ? 1 : 2 });
    });
    var here = d.bands.map(function (b) { return b === d.here.band ? num(d.here.value) : null; });
    datasets.unshift(dataset(d.here.label, here, d.here.style, { order: 0 }));
    return {
      type: "line",
      data: { labels: d.bands, datasets: datasets },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        interaction: { mode: "nearest", intersect: false },
        layout: { padding: { top: 12, right: 8 } },
        scales: {
          y: { beginAtZero: true, title: { display: !narrow(), text: "per 1,000" },
               ticks: { maxTicksLimit: 6 } },
          x: { title: { display: true, text: "completed infusions" }, offset: true }
        },
        plugins: { legend: { display: false } }
      }
    };
  }

  function day(ms) { return new Date(ms).toISOString().slice(0, 10); }

  function indexConfig(d) {
    var t = function (s) { return Date.parse(s + "T00:00:00Z"); };
    var xy = function (p) { return { x: t(p.date), y: num(p.index) }; };
    var styles = {};
    d.series.forEach(function (s) { styles[s.key] = s; });
    var xs = d.dates.map(t);
    var lo = Math.min.apply(null, xs), hi = Math.max.apply(null, xs);
    var pad = Math.max((hi - lo) * 0.06, 20 * 864e5);
    var datasets = [];
    if (styles.final) {
      datasets.push(dataset(styles.final.label,
        d.points.filter(function (p) { return p.used && !p.bound; }).map(xy), styles.final.style));
    }
    ["above", "below"].forEach(function (key) {
      if (styles[key]) {
        datasets.push(dataset(styles[key].label,
          d.points.filter(function (p) { return p.bound === key; }).map(xy), styles[key].style));
      }
    });
    if (styles.other) {
      datasets.push(dataset(styles.other.label,
        d.points.filter(function (p) { return !p.used && !p.bound; }).map(xy), styles.other.style));
    }
    if (styles.whatif && d.override) {
      datasets.push(dataset(styles.whatif.label, [xy(d.override)], styles.whatif.style));
    }
    d.cutoffs.forEach(function (c) {
      datasets.push(dataset(c.label, [{ x: lo - pad, y: c.value }, { x: hi + pad, y: c.value }],
                            c.style, { cutoff: true }));
    });
    return {
      type: "scatter",
      data: { datasets: datasets },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        layout: { padding: { top: 8, right: 16 } },
        scales: {
          x: { type: "linear", min: lo - pad, max: hi + pad,
               title: { display: true, text: "test date" },
               /* Ticks at the test dates themselves, never at padded range ends. */
               afterBuildTicks: function (axis) {
                 axis.ticks = xs.map(function (v) { return { value: v }; });
               },
               ticks: { autoSkip: true, autoSkipPadding: 12, maxRotation: 0,
                        callback: function (v) { return day(v); } } },
          y: { beginAtZero: true, suggestedMax: 2, title: { display: !narrow(), text: "index" } }
        },
        plugins: {
          legend: { display: false },
          tooltip: {
            filter: function (item) { return !item.dataset.cutoff; },
            callbacks: { label: function (c) { return day(c.parsed.x) + ": index " + c.parsed.y; } }
          }
        }
      }
    };
  }

  function drawCharts() {
    charts.forEach(function (c) { c.destroy(); });
    charts = [];
    if (typeof window.Chart !== "function") { return; }  // the tables below each chart remain
    window.Chart.defaults.font.family = fontFamily();
    window.Chart.defaults.color = window.getComputedStyle(document.body).color;
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var d;
      try { d = JSON.parse(canvas.getAttribute("data-chart")); } catch (e) { return; }
      var config = d.kind === "strata" ? strataConfig(d) : indexConfig(d);
      charts.push(new window.Chart(canvas, config));
      // Drawn: its table (open for readers without script) folds back under the chart.
      var card = canvas.closest(".chart-card");
      var table = card ? card.querySelector("details.chart-table") : null;
      if (table) { table.removeAttribute("open"); }
    });
    if (window.performance && performance.mark) { performance.mark("pml-charts-drawn"); }
  }

  /* Printing lays the page out at paper width: draw each chart at its printed size (two
     columns of about 88 mm by 34 mm, see the print rules in app.css), then back. */
  function printFonts(chart, size) {
    var font = size ? { size: size } : undefined;
    ["x", "y"].forEach(function (axis) {
      var scale = chart.options.scales[axis];
      scale.ticks.font = font;
      scale.title.font = font;
    });
  }
  window.addEventListener("beforeprint", function () {
    charts.forEach(function (c) { printFonts(c, 9); c.resize(330, 128); c.update("none"); });
  });
  window.addEventListener("afterprint", function () {
    charts.forEach(function (c) { printFonts(c, null); c.resize(); c.update("none"); });
  });

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

  /* Each field's error beside the field (from the server's answer), or none. */
  function fieldErrors(doc) {
    form.querySelectorAll(".field-error").forEach(function (box) {
      var fresh = doc.getElementById(box.id);
      var text = fresh && !fresh.hidden ? fresh.textContent : "";
      box.textContent = text;
      box.hidden = !text;
      var field = box.closest(".field");
      var input = field && field.querySelector("input, select");
      if (field) { field.classList.toggle("invalid", !!text); }
      if (input) {
        if (text) { input.setAttribute("aria-invalid", "true"); }
        else { input.removeAttribute("aria-invalid"); }
      }
    });
  }

  function firstFieldError(doc) {
    var box = doc.querySelector(".field-error:not([hidden])");
    var field = box && box.closest(".field");
    var label = field && field.querySelector("label");
    return (label ? label.textContent + ": " : "") + (box ? box.textContent : "");
  }

  /* The headline on screen stays, marked as not including the latest input. */
  function markStale(doc) {
    var headline = document.querySelector("#summary .headline");
    var note = doc.querySelector("#summary .stale-note");
    if (!headline || !note) { return; }
    headline.classList.add("stale");
    var old = headline.querySelector(".stale-note");
    if (old) { old.remove(); }
    headline.insertBefore(document.importNode(note, true), headline.firstChild);
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
        var doc = new DOMParser().parseFromString(r[1], "text/html");
        if (r[0].status === 400 && doc.querySelector(".field-error:not([hidden])")) {
          showWhatIfError("");
          fieldErrors(doc);
          markStale(doc);
          swap(r[1], ["save"]);  // the server turned Save off: the result lacks the input
          announce("Not updated: " + firstFieldError(doc));
          return false;
        }
        if (!r[0].ok) {
          showWhatIfError(errorText(r[1], r[0].status));
          announce("Not updated: " + errorText(r[1], r[0].status));
          return false;
        }
        showWhatIfError("");
        fieldErrors(doc);
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
      /* Not shown (an invalid value, a failure): the next query is fetched whatever it is, so
         erasing the invalid value brings the page back to the values it names. */
      shownQuery = ok ? query : null;
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
  /* Checked before anything else the Save button does: old embedded engines (Oracle Health
     MPages run IE10-era ones) have neither fetch nor Promise, and there the click is left to
     the form, whose plain post saves the same result (the no-script path). */
  var canPost = typeof window.fetch === "function" && typeof window.Promise === "function";

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
          /* The server formats the time (ISO date, 24-hour clock, the clinic's time zone). */
          var when = data.savedAtText || (data.savedAt || "").replace("T", " ").slice(0, 16);
          var kind = data.resourceType || "RiskAssessment";
          var as = kind === "DocumentReference" ? " as a note" : "";
          status("ok", [
            data.created ? "Saved to the chart" + as + "." : "Already in the chart" + as + ": nothing new was created.",
            (data.reference || kind + "/" + data.id) + (when ? " · " + when : "")
          ]);
          button.textContent = data.created ? "Saved" : "Already in the chart";
          announce(data.created ? "Saved to the chart." : "Already in the chart.");
          var query = new URLSearchParams(body.overrides).toString();
          update(query, ["history"], null);
          return;
        }
        var lines = [data.title || "Not saved", data.message || data.detail || "The save failed."];
        if (data.error === "csrf") { lines.push("Reload the page and try again."); }
        if (data.error === "changed" || data.error === "chart-changed") {
          /* Nothing was written: show the result as the chart (or the what-if values) now
             stand, then say why, so the clinician reviews before saving again. */
          var query = form ? formQuery() : "";
          return update(query, ["summary", "save", "details"], null).then(function (ok) {
            if (ok) { shownQuery = query; }
            status("failed", lines);
            announce("Not saved. " + (data.message || ""));
          });
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
    if (t.id === "save-button") {
      if (!canPost) { return; }  // the form posts itself
      e.preventDefault(); save();  // not the form post
    }
    else if (t.id === "copy-summary" || t.classList.contains("copy-summary")) { copySummary(t.id === "copy-summary" ? null : t); }
  });

  drawCharts();
})();
