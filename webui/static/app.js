// coderun web UI: small enhancements on top of pages that work without JavaScript.
// - the code box: Tab indents, Shift+Tab dedents, Esc then Tab leaves it; Ctrl/Cmd+Enter runs
// - the runs this browser started, kept in localStorage (never on the server)
// - a run's page updates itself by long-polling /runs/<name>/live until the run ends
"use strict";

(function () {
  document.documentElement.classList.add("js");

  var INDENT = "    ";
  var RECENT_KEY = "coderun.recentRuns";
  var RECENT_MAX = 20;
  var RUN_NAME = /^run-[a-z2-7]{24}$/;
  var WAIT_SECONDS = 25;

  // ---- recent runs (localStorage) ---------------------------------------------------------

  function loadRecent() {
    try {
      var list = JSON.parse(window.localStorage.getItem(RECENT_KEY) || "[]");
      return Array.isArray(list) ? list.filter(function (item) {
        return item && typeof item.name === "string" && RUN_NAME.test(item.name);
      }) : [];
    } catch (error) {
      return [];
    }
  }

  function saveRecent(list) {
    try {
      window.localStorage.setItem(RECENT_KEY, JSON.stringify(list.slice(0, RECENT_MAX)));
    } catch (error) {
      // Storage full or disabled (private mode): the list is a convenience only.
    }
  }

  function rememberRun(live) {
    var list = loadRecent().filter(function (item) { return item.name !== live.dataset.runName; });
    list.unshift({
      name: live.dataset.runName,
      summary: live.dataset.summary || "",
      headline: live.dataset.headline || "",
      created: live.dataset.created || "",
    });
    saveRecent(list);
  }

  function showRecent() {
    var listElement = document.getElementById("recent-list");
    if (!listElement) {
      return;
    }
    var empty = document.getElementById("recent-empty");
    var clear = document.getElementById("recent-clear");
    var runs = loadRecent();
    listElement.textContent = "";
    runs.forEach(function (run) {
      var item = document.createElement("li");
      var link = document.createElement("a");
      link.href = "/runs/" + run.name;
      link.textContent = run.summary || run.name;
      var meta = document.createElement("span");
      meta.className = "recent-meta";
      var when = run.created ? new Date(run.created) : null;
      var parts = [String(run.headline || "")];
      if (when && !isNaN(when.getTime())) {
        parts.push(when.toLocaleString());
      }
      meta.textContent = " — " + parts.filter(Boolean).join(", ");
      item.appendChild(link);
      item.appendChild(meta);
      listElement.appendChild(item);
    });
    if (empty) {
      empty.hidden = runs.length > 0;
    }
    if (clear) {
      clear.hidden = runs.length === 0;
      clear.onclick = function () {
        saveRecent([]);
        showRecent();
      };
    }
  }

  // ---- the code box -------------------------------------------------------------------------

  function insertText(box, text) {
    // execCommand keeps the browser's undo history; setRangeText is the fallback.
    if (!document.execCommand || !document.execCommand("insertText", false, text)) {
      box.setRangeText(text, box.selectionStart, box.selectionEnd, "end");
    }
  }

  function indentLines(box, outdent) {
    var value = box.value;
    var start = value.lastIndexOf("\n", box.selectionStart - 1) + 1;
    var end = box.selectionEnd;
    var block = value.slice(start, end);
    var lines = block.split("\n");
    var changed = lines.map(function (line) {
      if (!outdent) {
        return INDENT + line;
      }
      var spaces = line.match(/^ {0,4}/)[0].length;
      return line.slice(spaces || (line[0] === "\t" ? 1 : 0));
    }).join("\n");
    box.setSelectionRange(start, end);
    insertText(box, changed);
    box.setSelectionRange(start, start + changed.length);
  }

  function setUpCodeBox(form) {
    var box = document.getElementById("code");
    if (!box) {
      return;
    }
    var tabLeaves = false;
    box.addEventListener("keydown", function (event) {
      if (event.key === "Escape") {
        tabLeaves = true; // the next Tab moves focus on, so the box is never a keyboard trap
        return;
      }
      if (event.key !== "Tab" || event.ctrlKey || event.altKey || event.metaKey) {
        if (event.key !== "Shift") {
          tabLeaves = false;
        }
        return;
      }
      if (tabLeaves) {
        tabLeaves = false;
        return;
      }
      event.preventDefault();
      var multiLine = box.value.slice(box.selectionStart, box.selectionEnd).indexOf("\n") >= 0;
      if (event.shiftKey || multiLine) {
        indentLines(box, event.shiftKey);
      } else {
        insertText(box, INDENT);
      }
    });
    box.addEventListener("blur", function () { tabLeaves = false; });

    form.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        if (form.requestSubmit) {
          form.requestSubmit();
        } else {
          form.submit();
        }
      }
    });
    var button = document.getElementById("run-button");
    form.addEventListener("submit", function () {
      if (button) {
        button.disabled = true;
        button.textContent = "Starting…";
      }
    });
    // Coming back with the Back button shows the page from cache: make the button usable again.
    window.addEventListener("pageshow", function () {
      if (button) {
        button.disabled = false;
        button.textContent = "Run";
      }
    });
  }

  // ---- a run's live updates -----------------------------------------------------------------

  function sleep(ms) {
    return new Promise(function (resolve) { window.setTimeout(resolve, ms); });
  }

  function announce(text) {
    var announcer = document.getElementById("run-announcer");
    if (announcer) {
      announcer.textContent = text;
    }
  }

  function runEnded(live) {
    var controls = document.getElementById("run-controls");
    if (controls) {
      controls.hidden = true;
    }
    document.title = live.dataset.headline + " · " + live.dataset.runName + " · coderun";
  }

  async function follow(live) {
    var name = live.dataset.runName;
    var delay = 0;
    for (;;) {
      if (delay) {
        await sleep(delay);
      }
      var version = live.dataset.version || "";
      var url = "/runs/" + encodeURIComponent(name) + "/live?wait=" + WAIT_SECONDS +
        "&rv=" + encodeURIComponent(version);
      var response;
      try {
        response = await fetch(url, { headers: { Accept: "text/html" }, cache: "no-store" });
      } catch (error) {
        delay = Math.min(Math.max(delay * 2, 2000), 30000);
        continue;
      }
      if (response.status === 404) {
        announce("This run no longer exists.");
        var controls = document.getElementById("run-controls");
        if (controls) {
          controls.hidden = true;
        }
        return;
      }
      if (!response.ok) {
        delay = Math.min(Math.max(delay * 2, 2000), 30000);
        continue;
      }
      var html = await response.text();
      var parsed = new DOMParser().parseFromString(html, "text/html");
      var fresh = parsed.getElementById("run-live");
      if (!fresh) {
        delay = 5000;
        continue;
      }
      // An unchanged answer means the wait ran out (or the server was busy): pause briefly.
      delay = fresh.dataset.version === version ? 1000 : 0;
      if (fresh.dataset.version !== version) {
        var headlineChanged = fresh.dataset.headline !== live.dataset.headline;
        var replacement = document.importNode(fresh, true);
        live.replaceWith(replacement);
        live = replacement;
        rememberRun(live);
        if (headlineChanged) {
          announce(live.dataset.headline);
        }
      }
      if (live.dataset.terminal === "true") {
        runEnded(live);
        return;
      }
    }
  }

  function start() {
    var form = document.getElementById("run-form");
    if (form) {
      setUpCodeBox(form);
    }
    showRecent();
    var live = document.getElementById("run-live");
    if (live) {
      rememberRun(live);
      if (live.dataset.terminal !== "true") {
        follow(live);
      }
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
