/* django-eventtrack: copy the vendors' browser ids into one first-party cookie.
 *
 * Some vendors expose their browser ids only to JavaScript. This copies them into
 * the cookie EventTrackMiddleware reads (URL-encoded JSON, one key per id), so
 * server-side events join the visitor's browser session. It names no vendor: the
 * ids come from window.eventtrack.sources, which {% eventtrack_script %} renders
 * from the vendor registry (each source: the cookie key, a function reading the
 * id, and optionally a window event or a ready hook after which the id is known).
 * Render it with {% load eventtrack %}{% eventtrack_script %}; the tag also sets
 * the data-* options.
 */
(function () {
  "use strict";
  var options = (document.currentScript && document.currentScript.dataset) || {};
  var name = options.cookie || "eventtrack_ids";
  var maxAge = options.maxAge || "34560000";
  var domain = options.domain || "";
  var api = window.eventtrack || {};
  var sources = api.sources || [];
  var SAFE = /^[A-Za-z0-9._:-]{1,128}$/;

  function safe(read) {
    try {
      var value = read();
      return typeof value === "string" && SAFE.test(value) ? value : null;
    } catch (error) {
      return null;
    }
  }

  function stored() {
    var prefix = name + "=";
    var cookies = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < cookies.length; i++) {
      if (cookies[i].indexOf(prefix) === 0) {
        try {
          return JSON.parse(decodeURIComponent(cookies[i].slice(prefix.length))) || {};
        } catch (error) {
          return {};
        }
      }
    }
    return {};
  }

  function collect() {
    var previous = stored();
    var ids = {};
    for (var i = 0; i < sources.length; i++) {
      var key = sources[i].key;
      var value = safe(sources[i].read) || safe(function () { return previous[key]; });
      if (value) ids[key] = value;
    }
    var text = JSON.stringify(ids);
    if (text === "{}" || text === JSON.stringify(previous)) return;
    document.cookie = name + "=" + encodeURIComponent(text) + "; path=/; max-age=" + maxAge +
      "; SameSite=Lax" + (domain ? "; domain=" + domain : "") +
      (location.protocol === "https:" ? "; Secure" : "");
  }

  collect();
  document.addEventListener("DOMContentLoaded", collect);
  window.addEventListener("load", collect);
  document.addEventListener("click", collect, true); // before a link or button leaves the page
  document.addEventListener("submit", collect, true);
  window.addEventListener("pagehide", collect);
  for (var i = 0; i < sources.length; i++) {
    if (sources[i].event) window.addEventListener(sources[i].event, collect); // the id is ready
    try {
      if (sources[i].ready) sources[i].ready(collect);
    } catch (error) { /* the vendor's SDK is absent or not yet loaded */ }
  }
  api.collect = collect;
  window.eventtrack = api;
})();
