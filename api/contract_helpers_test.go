package api_test

// Contract-test helpers: every response a test receives through
// newContractClient is checked against ../openapi.yaml, and checkRouteParity
// keeps the Echo route table and the spec's operations in step.
//
// Notes on kin-openapi v0.153.0 behaviour these helpers rely on:
//
//   - Server matching. routers/gorillamux turns each entry of doc.Servers into a
//     host (and scheme/base path) matcher; a server with a host such as
//     "http://localhost:7900" would make every request to an httptest server
//     (127.0.0.1:<random port>) miss with ErrPathNotFound. With no servers at
//     all, gorillamux uses one empty server: no host, no scheme, no base path,
//     so only the request path is matched. The router is therefore built from a
//     shallow copy of the document whose Servers is nil, whatever openapi.yaml
//     declares (it declares the relative "/", which would also match any host).
//   - Body decoders. openapi3filter already registers JSON for
//     application/problem+json and a plain-string decoder for text/plain. For
//     application/yaml it registers a YAML decoder, which would turn the served
//     document into an object; the spec describes that body as `type: string`,
//     so the plain-string decoder is registered for application/yaml here.
//   - Formats. date-time is validated globally by kin-openapi; uuid and email
//     are not. They are validated here through per-call SchemaValidationOptions
//     (UUID per RFC 9562, so UUIDv7 ids pass), leaving kin-openapi's global
//     format registry, which the server's own validation may use, untouched.
//   - Requests are deliberately NOT validated: tests send malformed requests on
//     purpose. Only responses are checked.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/labstack/echo/v4"
)

// specPath is relative to the package directory, where `go test` runs.
const specPath = "../openapi.yaml"

var (
	specOnce sync.Once
	specDoc  *openapi3.T
	specErr  error

	routerOnce sync.Once
	specRouter routers.Router
	routerErr  error
)

func init() {
	// The spec documents GET /openapi.yaml as an application/yaml string.
	openapi3filter.RegisterBodyDecoder("application/yaml", openapi3filter.PlainBodyDecoder)
	// application/problem+json and text/plain have suitable decoders already;
	// registering them again keeps the helpers correct should that change.
	openapi3filter.RegisterBodyDecoder("application/problem+json", openapi3filter.JSONBodyDecoder)
	openapi3filter.RegisterBodyDecoder("text/plain", openapi3filter.PlainBodyDecoder)
	// The spec documents GET / (the dashboard) as a text/html string.
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
}

// loadSpec loads and validates ../openapi.yaml once per test binary. The
// returned document is shared: treat it as read-only.
func loadSpec(t testing.TB) *openapi3.T {
	t.Helper()
	specOnce.Do(func() {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromFile(specPath)
		if err != nil {
			specErr = fmt.Errorf("load %s: %w", specPath, err)
			return
		}
		if err := doc.Validate(loader.Context); err != nil {
			specErr = fmt.Errorf("validate %s: %w", specPath, err)
			return
		}
		specDoc = doc
	})
	if specErr != nil {
		t.Fatalf("openapi.yaml: %v", specErr)
	}
	return specDoc
}

// loadRouter returns a gorillamux router over the spec that matches requests
// to any host (see the package comment on server matching).
func loadRouter(t testing.TB) routers.Router {
	t.Helper()
	doc := loadSpec(t)
	routerOnce.Do(func() {
		hostless := *doc
		hostless.Servers = nil
		specRouter, routerErr = gorillamux.NewRouter(&hostless)
	})
	if routerErr != nil {
		t.Fatalf("openapi.yaml: build router: %v", routerErr)
	}
	return specRouter
}

// responseOptions are the openapi3filter options used for every response.
func responseOptions() *openapi3filter.Options {
	return &openapi3filter.Options{
		IncludeResponseStatus: true,
		MultiError:            true,
		AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
		SchemaValidationOptions: []openapi3.SchemaValidationOption{
			openapi3.WithStringFormatValidator("uuid",
				openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562)),
			openapi3.WithStringFormatValidator("email",
				openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForEmail)),
		},
	}
}

// validatingTransport sends each request with base, then checks the response
// against openapi.yaml, reporting mismatches with t.Errorf. The response body
// is re-buffered, so callers read it as usual.
type validatingTransport struct {
	t      testing.TB
	router routers.Router
	base   http.RoundTripper
}

// newContractClient returns an HTTP client whose every response is validated
// against openapi.yaml. Use it with an httptest.Server URL.
func newContractClient(t testing.TB) *http.Client {
	t.Helper()
	return &http.Client{Transport: &validatingTransport{
		t:      t,
		router: loadRouter(t),
		base:   http.DefaultTransport,
	}}
}

func (vt *validatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := vt.base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if err := vt.check(req, resp); err != nil {
		vt.t.Errorf("response %s %s %d does not match openapi.yaml: %v",
			req.Method, req.URL.Path, resp.StatusCode, err)
	}
	return resp, nil
}

// check validates resp against the operation req resolves to. It always leaves
// resp.Body readable (except for event streams, which it never reads).
func (vt *validatingTransport) check(req *http.Request, resp *http.Response) error {
	route, pathParams, findErr := vt.router.FindRoute(req)

	opts := responseOptions()
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	streaming := mediaType == "text/event-stream"

	var body []byte
	if !streaming && resp.Body != nil {
		var readErr error
		body, readErr = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if readErr != nil {
			return fmt.Errorf("reading body: %w", readErr)
		}
	}
	if streaming {
		// An open event stream never ends; check status and headers only.
		opts.ExcludeResponseBody = true
	}

	if findErr != nil {
		unknown := errors.Is(findErr, routers.ErrPathNotFound) || errors.Is(findErr, routers.ErrMethodNotAllowed)
		if unknown && (resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed) {
			return nil
		}
		return fmt.Errorf("no operation for %s %s in the spec: %w", req.Method, req.URL.Path, findErr)
	}

	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: pathParams,
			Route:      route,
			Options:    opts,
		},
		Status:  resp.StatusCode,
		Header:  resp.Header,
		Options: opts,
	}
	input.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(req.Context(), input); err != nil {
		return err
	}

	// openapi3filter does not object to a body where the spec documents none
	// (for example on a 204).
	if len(body) > 0 && req.Method != http.MethodHead {
		if ref := documentedResponse(route.Operation, resp.StatusCode); ref != nil && ref.Value != nil && len(ref.Value.Content) == 0 {
			return fmt.Errorf("the spec documents no body for status %d, got %d bytes (%q)",
				resp.StatusCode, len(body), truncate(body, 120))
		}
	}
	return nil
}

func documentedResponse(op *openapi3.Operation, status int) *openapi3.ResponseRef {
	if op == nil || op.Responses == nil {
		return nil
	}
	if ref := op.Responses.Status(status); ref != nil {
		return ref
	}
	return op.Responses.Default()
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "…"
}

var (
	echoParam    = regexp.MustCompile(`:([A-Za-z0-9_]+)`)
	openapiParam = regexp.MustCompile(`\{[^{}/]*\}`)
)

// echoPathToOpenAPI maps Echo's "/v1/meshes/:id" to "/v1/meshes/{id}".
func echoPathToOpenAPI(p string) string {
	return echoParam.ReplaceAllString(p, "{$1}")
}

// pathShape blanks parameter names, so "/x/{id}" and "/x/{meshId}" compare
// equal: parameter names do not change what a route matches.
func pathShape(p string) string {
	return openapiParam.ReplaceAllString(p, "{}")
}

// checkRouteParity reports every Echo route the spec lacks and every spec
// operation no Echo route serves. Ignored: wildcard ("*") routes, Echo's
// internal pseudo-methods (echo_route_not_found, …), and HEAD/OPTIONS routes
// the spec does not document (Echo adds none of its own; they would only be
// hand-registered mirrors or CORS helpers).
func checkRouteParity(t testing.TB, routes []*echo.Route) {
	t.Helper()
	doc := loadSpec(t)

	type key struct{ method, shape string }
	spec := map[key]string{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			m := strings.ToUpper(method)
			spec[key{m, pathShape(path)}] = m + " " + path
		}
	}

	served := map[key]string{}
	for _, r := range routes {
		if r == nil || strings.Contains(r.Path, "*") {
			continue
		}
		if r.Method == echo.RouteNotFound || strings.HasPrefix(strings.ToLower(r.Method), "echo_") {
			continue
		}
		m := strings.ToUpper(r.Method)
		p := echoPathToOpenAPI(r.Path)
		k := key{m, pathShape(p)}
		if (m == http.MethodHead || m == http.MethodOptions) && spec[k] == "" {
			continue
		}
		served[k] = m + " " + p
	}

	var missingFromSpec, missingFromRouter []string
	for k, name := range served {
		if _, ok := spec[k]; !ok {
			missingFromSpec = append(missingFromSpec, name)
		}
	}
	for k, name := range spec {
		if _, ok := served[k]; !ok {
			missingFromRouter = append(missingFromRouter, name)
		}
	}
	sort.Strings(missingFromSpec)
	sort.Strings(missingFromRouter)
	for _, name := range missingFromSpec {
		t.Errorf("route %s is registered in echo but missing from openapi.yaml", name)
	}
	for _, name := range missingFromRouter {
		t.Errorf("operation %s is in openapi.yaml but not registered in echo", name)
	}
}

// TestOpenAPISpecLoads checks that openapi.yaml loads, validates, and carries
// the expected operations, each with an operationId, a tag and responses.
func TestOpenAPISpecLoads(t *testing.T) {
	doc := loadSpec(t)
	if !doc.IsOpenAPI30() {
		t.Errorf("openapi version %q, want 3.0.x", doc.OpenAPI)
	}

	// A sample of operations pinned to their routes; the full route set is
	// kept in step with the server by TestRoutesMatchOpenAPI.
	want := map[string]string{
		"health":              "GET /health",
		"ready":               "GET /ready",
		"metrics":             "GET /metrics",
		"getOpenAPI":          "GET /openapi.yaml",
		"signup":              "POST /v1/auth/signup",
		"login":               "POST /v1/auth/login",
		"refresh":             "POST /v1/auth/refresh",
		"logout":              "POST /v1/auth/logout",
		"joinMesh":            "POST /v1/join",
		"getMe":               "GET /v1/me",
		"createMesh":          "POST /v1/meshes",
		"listMeshes":          "GET /v1/meshes",
		"getMesh":             "GET /v1/meshes/{id}",
		"createMemberSession": "POST /v1/meshes/{id}/session",
		"createInvite":        "POST /v1/meshes/{id}/invites",
		"listMembers":         "GET /v1/members",
		"revokeMember":        "DELETE /v1/members/{id}",
		"createApiKey":        "POST /v1/api-keys",
		"listApiKeys":         "GET /v1/api-keys",
		"revokeApiKey":        "DELETE /v1/api-keys/{id}",
	}
	got := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			switch {
			case op.OperationID == "":
				t.Errorf("%s has no operationId", name)
				continue
			case got[op.OperationID] != "":
				t.Errorf("operationId %q used by %s and %s", op.OperationID, got[op.OperationID], name)
			}
			got[op.OperationID] = name
			if len(op.Tags) == 0 {
				t.Errorf("%s has no tags", name)
			}
			if op.Security == nil {
				t.Errorf("%s declares no security (use [] for public operations)", name)
			}
			if op.Responses == nil || op.Responses.Len() == 0 {
				t.Errorf("%s documents no responses", name)
			}
			if ref := op.Responses.Status(http.StatusTooManyRequests); ref != nil {
				if _, ok := ref.Value.Headers["Retry-After"]; !ok {
					t.Errorf("%s: 429 does not document Retry-After", name)
				}
			}
		}
	}
	for id, name := range want {
		if got[id] != name {
			t.Errorf("operationId %q: got %q, want %q", id, got[id], name)
		}
	}
	for _, scheme := range []string{"userBearer", "memberBearer"} {
		if doc.Components.SecuritySchemes[scheme] == nil {
			t.Errorf("security scheme %q missing", scheme)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// recordingTB captures Errorf so the self-check can assert that the contract
// client reports (or does not report) a mismatch.
type recordingTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recordingTB) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	errs := r.errs
	r.errs = nil
	return errs
}

// TestContractClientSelfCheck runs the validating client against canned
// responses, independent of the real server.
func TestContractClientSelfCheck(t *testing.T) {
	const (
		uuid1 = "01923e5c-8a4b-7c3d-9e2f-1a2b3c4d5e6f"
		uuid2 = "01923e5c-8a4b-7c3d-9e2f-1a2b3c4d5e70"
		uuid3 = "01923e5c-8a4b-7c3d-9e2f-1a2b3c4d5e71"
		uuid4 = "01923e5c-8a4b-7c3d-9e2f-1a2b3c4d5e72"
	)
	type canned struct {
		status int
		ct     string
		header map[string]string
		body   string
	}
	responses := map[string]canned{
		"GET /health":             {200, "application/json", nil, `{"status":"ok"}`},
		"GET /ready":              {200, "application/json", nil, `{"status":"starting"}`},
		"GET /metrics":            {200, "text/plain; version=0.0.4; charset=utf-8; escaping=underscores", nil, "# HELP x\nx 1\n"},
		"GET /openapi.yaml":       {200, "application/yaml", nil, "openapi: 3.0.3\n"},
		"GET /nowhere":            {404, "application/problem+json", nil, `{"type":"about:blank","title":"Not Found","status":404,"code":"not_found"}`},
		"GET /v1/elsewhere":       {200, "application/json", nil, `{}`},
		"GET /v1/meshes/" + uuid1: {404, "application/problem+json", nil, `{"type":"about:blank","title":"Not Found","status":404,"code":"mesh_not_found"}`},
		"GET /v1/meshes/" + uuid2: {200, "application/json", nil, `{"id":"` + uuid2 + `","slug":"team","name":"Team","ownerUserId":"` + uuid1 + `","createdAt":"2025-01-01T00:00:00Z"}`},
		"GET /v1/meshes/" + uuid3: {200, "application/json", nil, `{"id":"` + uuid3 + `","slug":"team","name":"Team","ownerUserId":"not-a-uuid","createdAt":"2025-01-01T00:00:00Z","archivedAt":null}`},
		"GET /v1/meshes/" + uuid4: {200, "application/json; charset=utf-8", nil, `{"id":"` + uuid4 + `","slug":"team","name":"Team","ownerUserId":"` + uuid1 + `","createdAt":"2025-01-01T00:00:00Z","archivedAt":null}`},
		"POST /v1/join":           {422, "application/problem+json", nil, `{"type":"about:blank","title":"Unprocessable","status":422,"code":"validation_failed"}`},
		"GET /v1/meshes":          {200, "application/json", nil, `{"items":[],"nextCursor":null,"hasMore":false}`},
		"POST /v1/auth/login":     {429, "application/problem+json", nil, `{"type":"about:blank","title":"Too Many Requests","status":429,"code":"rate_limited"}`},
		"POST /v1/auth/refresh":   {429, "application/problem+json", map[string]string{"Retry-After": "3"}, `{"type":"about:blank","title":"Too Many Requests","status":429,"code":"rate_limited"}`},
		"POST /v1/auth/logout":    {204, "", nil, ""},
		"POST /v1/auth/signup":    {422, "application/json", nil, `{"type":"about:blank","title":"Unprocessable","status":422,"code":"validation_failed","errors":[{"field":"email","message":"required"}]}`},
		"PUT /v1/meshes":          {405, "application/problem+json", nil, `{"type":"about:blank","title":"Method Not Allowed","status":405,"code":"method_not_allowed"}`},
		"GET /v1/me":              {418, "application/problem+json", nil, `{"type":"about:blank","title":"Teapot","status":418,"code":"teapot"}`},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := responses[r.Method+" "+r.URL.Path]
		if !ok {
			http.Error(w, "no canned response", http.StatusTeapot)
			return
		}
		if c.ct != "" {
			w.Header().Set("Content-Type", c.ct)
		}
		for k, v := range c.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(c.status)
		_, _ = io.WriteString(w, c.body)
	}))
	defer srv.Close()

	rec := &recordingTB{TB: t}
	client := newContractClient(rec)

	cases := []struct {
		method, path string
		wantErr      string // substring of the reported error; "" = must pass
	}{
		{"GET", "/health", ""},
		{"GET", "/ready", `"starting"`},
		{"GET", "/metrics", ""},
		{"GET", "/openapi.yaml", ""},
		{"GET", "/nowhere", ""},
		{"GET", "/v1/elsewhere", "no operation"},
		{"GET", "/v1/meshes/" + uuid1, ""},
		{"GET", "/v1/meshes/" + uuid2, "archivedAt"},
		{"GET", "/v1/meshes/" + uuid3, "uuid"},
		{"GET", "/v1/meshes/" + uuid4, ""},
		{"POST", "/v1/join", `"errors"`},
		{"GET", "/v1/meshes?limit=10", ""},
		{"POST", "/v1/auth/login", "Retry-After"},
		{"POST", "/v1/auth/refresh", ""},
		{"POST", "/v1/auth/logout", ""},
		{"POST", "/v1/auth/signup", "application/json"},
		{"PUT", "/v1/meshes", ""},
		{"GET", "/v1/me", "status is not supported"},
	}
	for _, tc := range cases {
		req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatalf("%s %s: body not re-buffered: %v", tc.method, tc.path, err)
		}
		path, _, _ := strings.Cut(tc.path, "?")
		if want := responses[tc.method+" "+path].body; string(body) != want {
			t.Errorf("%s %s: caller read body %q, want %q", tc.method, tc.path, body, want)
		}
		errs := rec.take()
		for _, e := range errs {
			t.Logf("reported as expected: %s", e)
		}
		switch {
		case tc.wantErr == "" && len(errs) > 0:
			t.Errorf("%s %s: unexpected contract error(s): %v", tc.method, tc.path, errs)
		case tc.wantErr != "" && !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tc.wantErr) }):
			t.Errorf("%s %s: want a contract error containing %q, got %v", tc.method, tc.path, tc.wantErr, errs)
		}
	}

	// A body where the spec documents none. net/http servers never send a body
	// with a 204, so this goes through a canned transport instead.
	vt := &validatingTransport{t: rec, router: loadRouter(t), base: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		return &http.Response{
			StatusCode: http.StatusNoContent,
			Header:     http.Header{"Content-Type": {"text/plain"}},
			Body:       io.NopCloser(strings.NewReader("gone")),
			Request:    r,
		}, nil
	})}
	req, err := http.NewRequest(http.MethodDelete, "http://example.test/v1/members/"+uuid1, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: vt}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if errs := rec.take(); len(errs) != 1 || !strings.Contains(errs[0], "no body") {
		t.Errorf("204 with a body: got %v", errs)
	}

	// Route parity: a complete table passes; gaps are reported both ways.
	e := echo.New()
	noop := func(echo.Context) error { return nil }
	// The complete table is every operation of the spec, as echo paths.
	for path, item := range loadSpec(t).Paths.Map() {
		echoPath := regexp.MustCompile(`\{([^}]+)\}`).ReplaceAllString(path, ":$1")
		for method := range item.Operations() {
			e.Add(method, echoPath, noop)
		}
	}
	e.RouteNotFound("/*", noop)
	e.Static("/assets", t.TempDir())
	e.HEAD("/health", noop)
	checkRouteParity(rec, e.Routes())
	if errs := rec.take(); len(errs) > 0 {
		t.Errorf("route parity on a complete table: %v", errs)
	}
	e.GET("/v1/extra/:id", noop)
	routes := slices.DeleteFunc(e.Routes(), func(r *echo.Route) bool { return r.Path == "/v1/me" })
	checkRouteParity(rec, routes)
	errs := rec.take()
	if len(errs) != 2 ||
		!slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, "GET /v1/extra/{id}") }) ||
		!slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, "GET /v1/me ") }) {
		t.Errorf("route parity with gaps: got %v", errs)
	}
}
