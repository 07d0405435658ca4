// Swagger UI on /docs. The page's element names the OpenAPI document and the token endpoint.
// persistAuthorization stays off (Swagger UI's default): a token got with Authorize lives in this
// page's memory only, never in the browser's storage.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  var tokenUrl = new URL(root.dataset.tokenUrl, window.location.href).href;

  // A refused sign-in: Swagger UI shows the status text and an RFC 6749 `error`; this API
  // answers in its own envelope, so hand Swagger UI the envelope's message to show instead.
  function showRefusedSignIn(response) {
    var body = response.body;
    if (!response.ok && response.url.split("?")[0] === tokenUrl && body && typeof body.message === "string") {
      response.statusText = body.message;
      response.text = response.data = JSON.stringify({ message: body.message });
    }
    return response;
  }

  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    responseInterceptor: showRefusedSignIn,
  });
})();
