// What htmx has no attribute for: direct uploads with progress, drag-and-drop, click-to-play, toasts.
(function () {
  "use strict";

  function toast(message, kind) {
    var box = document.createElement("div");
    box.className = "toast " + (kind || "info");
    box.setAttribute("role", kind === "error" ? "alert" : "status");
    box.textContent = message;
    document.getElementById("toasts").appendChild(box);
  }

  // Ask for a signed upload URL, then PUT the bytes straight to storage. Resolves with the storage key.
  function upload(file, askUrl, onProgress) {
    return fetch(askUrl, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ filename: file.name, content_type: file.type, size: file.size }),
    }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw new Error(body.message || body.error || "the upload was refused");
        return body;
      });
    }).then(function (target) {
      return new Promise(function (resolve, reject) {
        var xhr = new XMLHttpRequest();
        xhr.open(target.method, target.upload_url);
        Object.keys(target.headers || {}).forEach(function (name) { xhr.setRequestHeader(name, target.headers[name]); });
        xhr.upload.onprogress = function (e) { if (e.lengthComputable) onProgress(Math.floor((100 * e.loaded) / e.total)); };
        xhr.onload = function () {
          if (xhr.status >= 200 && xhr.status < 300) return resolve(target.key);
          var reason = "";
          try { var b = JSON.parse(xhr.responseText); reason = b.message || b.error; } catch (e) { reason = xhr.statusText; }
          reject(new Error(file.name + " could not be uploaded: " + (reason || "status " + xhr.status)));
        };
        xhr.onerror = function () { reject(new Error(file.name + " could not be uploaded: the connection failed")); };
        xhr.send(file);
      });
    });
  }

  // Labels and limits come from the server, rendered into the page: stages on <body data-stages>, the size limit
  // on data-max-upload, the audio formats as the file input's accept attribute.
  function stage(name) {
    return JSON.parse(document.body.dataset.stages || "{}")[name] || name;
  }

  // What a dropped file must pass before it is sent (choosing one through the input already honours accept).
  function refusal(file, input) {
    var limit = Number(input.dataset.maxUpload || input.form && input.form.dataset.maxUpload);
    if (limit && file.size > limit) {
      return file.name + " is too large: " + (file.size / 1048576).toFixed(1) + " MB, the limit is " + (limit / 1048576).toFixed(0) + " MB";
    }
    var name = file.name.toLowerCase();
    var type = (file.type || "").toLowerCase();
    var accepted = (input.accept || "").split(",").some(function (pattern) {
      pattern = pattern.trim().toLowerCase();
      if (pattern.charAt(0) === ".") return name.slice(-pattern.length) === pattern;
      if (pattern.slice(-2) === "/*") return type.indexOf(pattern.slice(0, -1)) === 0;
      return pattern === type;
    });
    return accepted ? null : file.name + " is not an audio file (" + (type || "unknown type") + ")";
  }

  function setStatus(html, state) {
    var status = document.getElementById("status");
    status.className = "status " + state;
    status.dataset.state = state;
    status.removeAttribute("hx-get");
    status.innerHTML = html;
  }

  function escapeHtml(text) {
    var div = document.createElement("div");
    div.textContent = text;
    return div.innerHTML;
  }

  function search(file, input) {
    var form = document.getElementById("search-form");
    if (form.classList.contains("busy")) return;
    var refused = refusal(file, input);
    if (refused) {
      toast(refused, "error");
      return;
    }
    form.classList.add("busy");
    var spinner = '<span class="spinner" aria-hidden="true"></span> ';
    setStatus(spinner + "<span>" + escapeHtml(stage("uploading")) + " 0%</span>", "running");
    upload(file, form.dataset.uploadUrl, function (pct) {
      setStatus(spinner + "<span>" + escapeHtml(stage("uploading")) + " " + pct + "%</span>", "running");
    }).then(function (key) {
      form.elements.key.value = key;
      setStatus(spinner + "<span>" + escapeHtml(stage("analyzing")) + "</span>", "running");
      htmx.trigger(form, "submit");
    }).catch(function (error) {
      form.classList.remove("busy");
      setStatus('<span class="icon">!</span> <span>' + escapeHtml(error.message) + "</span>", "failed");
      toast(error.message, "error");
    });
  }

  function ingest(files, input) {
    var list = document.getElementById("ingest-list");
    var chain = Promise.resolve();
    Array.prototype.forEach.call(files, function (file) {
      var row = document.createElement("tr");
      row.className = "ingest running";
      row.innerHTML = '<td class="file"></td><td class="state"></td>';
      row.firstChild.textContent = file.name;
      row.lastChild.textContent = stage("waiting");
      list.prepend(row);
      var refused = refusal(file, input);
      if (refused) {
        row.className = "ingest failed";
        row.lastChild.textContent = "✗ " + refused;
        return;
      }
      chain = chain.then(function () {
        return upload(file, input.dataset.uploadUrl, function (pct) {
          row.lastChild.textContent = stage("uploading") + " " + pct + "%";
        }).then(function (key) {
          return htmx.ajax("POST", input.dataset.ingestUrl, { target: row, swap: "outerHTML", values: { key: key, filename: file.name } });
        }).catch(function (error) {
          row.className = "ingest failed";
          row.lastChild.textContent = "✗ " + error.message;
        });
      });
    });
  }

  function handleFiles(input, files) {
    if (!files || !files.length) return;
    if (input.hasAttribute("data-search-file")) search(files[0], input);
    else if (input.hasAttribute("data-ingest-files")) ingest(files, input);
  }

  document.addEventListener("change", function (e) {
    if (e.target.matches("[data-search-file], [data-ingest-files]")) {
      handleFiles(e.target, e.target.files);
      e.target.value = "";
    }
  });

  ["dragenter", "dragover"].forEach(function (type) {
    document.addEventListener(type, function (e) {
      var zone = e.target.closest && e.target.closest("[data-dropzone]");
      if (!zone) return;
      e.preventDefault();
      zone.classList.add("over");
    });
  });
  ["dragleave", "drop"].forEach(function (type) {
    document.addEventListener(type, function (e) {
      var zone = e.target.closest && e.target.closest("[data-dropzone]");
      if (!zone) return;
      e.preventDefault();
      zone.classList.remove("over");
      if (type === "drop") handleFiles(zone.querySelector("input[type=file]"), e.dataTransfer.files);
    });
  });

  // Clicking the loudness picture plays from that point.
  document.addEventListener("click", function (e) {
    var svg = e.target.closest && e.target.closest("svg.envelope");
    if (!svg) return;
    var audio = svg.parentElement.querySelector("audio");
    var duration = Number(svg.dataset.duration);
    if (!audio || !duration) return;
    var box = svg.getBoundingClientRect();
    var at = Math.max(0, Math.min(1, (e.clientX - box.left) / box.width)) * duration;
    audio.currentTime = at;
    audio.play();
  });

  // A search that ended (results or an error) makes the drop zone usable again.
  document.addEventListener("htmx:afterSettle", function () {
    var status = document.getElementById("status");
    var form = document.getElementById("search-form");
    if (form && status && status.dataset.state !== "running") form.classList.remove("busy");
  });
  document.addEventListener("htmx:sendError", function () {
    toast("The server cannot be reached. Check your connection and try again.", "error");
    var form = document.getElementById("search-form");
    if (form) form.classList.remove("busy");
  });
  // Toasts hide themselves (CSS animation), then leave the page.
  document.addEventListener("animationend", function (e) {
    if (e.target.classList.contains("toast")) e.target.remove();
  });
})();
