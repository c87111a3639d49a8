// Starts Swagger UI from local files (no CDN, no inline script, so the CSP holds).
/* global SwaggerUIBundle */
(function startSwaggerUi() {
  const root = document.getElementById("swagger-ui");

  // Swagger UI's page goes from its title (h1) to the tags (h3): a heading of the level
  // between keeps the outline whole for screen readers.
  function addOperationsHeading() {
    const firstTag = root.querySelector(".opblock-tag-section");
    if (!firstTag || root.querySelector("#operations-heading")) return;
    const heading = document.createElement("h2");
    heading.id = "operations-heading";
    heading.className = "visually-hidden";
    heading.textContent = "Operations";
    firstTag.parentNode.insertBefore(heading, firstTag);
  }

  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: false, // true makes each path a link inside its summary button (axe nested-interactive)
    showExtensions: true,
    showCommonExtensions: true,
    validatorUrl: null, // never send the document to an outside validator
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    onComplete: addOperationsHeading,
  });
})();
