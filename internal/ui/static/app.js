// berth web UI: progressive enhancements only; every page works without it.
(function () {
  "use strict";
  var root = document.documentElement;
  var stored = null;
  try { stored = localStorage.getItem("berth-theme"); } catch (e) {}
  if (stored === "light" || stored === "dark") root.setAttribute("data-theme", stored);

  function ready(fn) {
    if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn);
  }

  ready(function () {
    // Theme toggle: light <-> dark, remembered in this browser.
    var toggle = document.querySelector("[data-theme-toggle]");
    if (toggle) {
      toggle.addEventListener("click", function () {
        var dark = root.getAttribute("data-theme") === "dark" ||
          (!root.getAttribute("data-theme") && window.matchMedia("(prefers-color-scheme: dark)").matches);
        var next = dark ? "light" : "dark";
        root.setAttribute("data-theme", next);
        try { localStorage.setItem("berth-theme", next); } catch (e) {}
      });
    }

    // Copy buttons: data-copy="text" or data-copy-from="element id".
    document.querySelectorAll("[data-copy], [data-copy-from]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var text = btn.getAttribute("data-copy");
        if (text === null) {
          var el = document.getElementById(btn.getAttribute("data-copy-from"));
          text = el ? el.textContent : "";
        }
        var done = function () {
          var label = btn.textContent;
          btn.textContent = "Copied";
          btn.classList.add("done");
          setTimeout(function () { btn.textContent = label; btn.classList.remove("done"); }, 1500);
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () { fallback(text); done(); });
        } else {
          fallback(text);
          done();
        }
      });
    });
    function fallback(text) {
      var ta = document.createElement("textarea");
      ta.value = text;
      ta.setAttribute("readonly", "");
      ta.className = "sr";
      document.body.appendChild(ta);
      ta.select();
      try { document.execCommand("copy"); } catch (e) {}
      document.body.removeChild(ta);
    }

    // Confirm destructive forms.
    document.querySelectorAll("form[data-confirm]").forEach(function (f) {
      f.addEventListener("submit", function (ev) {
        if (!window.confirm(f.getAttribute("data-confirm"))) ev.preventDefault();
      });
    });

    // Times: show "x ago" next to the absolute UTC time.
    var now = Date.now();
    document.querySelectorAll("time[datetime]").forEach(function (t) {
      var d = Date.parse(t.getAttribute("datetime"));
      if (isNaN(d)) return;
      t.title = t.textContent;
      var s = Math.round((now - d) / 1000), out;
      if (s < 60) out = "just now";
      else if (s < 3600) out = Math.round(s / 60) + " min ago";
      else if (s < 86400) out = Math.round(s / 3600) + " h ago";
      else if (s < 86400 * 60) out = Math.round(s / 86400) + " days ago";
      else return;
      t.textContent = out;
    });

    // "/" focuses the filter box.
    var filter = document.querySelector("[data-filter]");
    document.addEventListener("keydown", function (ev) {
      if (ev.key !== "/" || !filter) return;
      var tag = (document.activeElement && document.activeElement.tagName) || "";
      if (tag === "INPUT" || tag === "TEXTAREA") return;
      ev.preventDefault();
      filter.focus();
      filter.select();
    });
  });
})();
