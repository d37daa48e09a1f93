package api

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// pipelineCase is one request to a deployed nova-api-metadata and the
// source in nova's stack (nova 26.2.2, Debian bookworm's python3-nova and
// nova-common, with their python3-paste 3.5.2, python3-oslo.middleware
// 5.0.0, python3-webob 1.8.6, python3-eventlet 0.33.1) that shapes its
// answer. The answers are pinned in testdata/pipeline.golden.
type pipelineCase struct {
	name    string
	source  string
	method  string
	path    string
	signed  bool // the agent's signed identity headers (and its X-Forwarded-For)
	headers map[string]string
	body    string
	chunked bool // a body of unknown length
	disable bool // the healthcheck disable file exists
}

var pipelineCases = []pipelineCase{
	{name: "repeated slashes are folded before the handler: the meta-data listing",
		source: "paste/urlmap.py URLMap.__call__ (normalize_url, norm_url_re '//+'); api-paste.ini [composite:metadata]",
		method: "GET", path: "//latest/meta-data/", signed: true},
	{name: "folded anywhere in the path",
		source: "paste/urlmap.py URLMap.normalize_url",
		method: "GET", path: "///latest//meta-data///hostname", signed: true},
	{name: "two slashes alone are the root: the EC2 version list, no identification",
		source: "paste/urlmap.py normalize_url, then nova/api/metadata/handler.py MetadataRequestHandler.__call__ (normpath == '/')",
		method: "GET", path: "//"},
	{name: "a child of a leaf: eventlet's bare 500",
		source: "nova/api/metadata/base.py find_path_in_tree (TypeError, unhandled); eventlet/wsgi.py handle_one_response",
		method: "GET", path: "/latest/meta-data/hostname/x", signed: true},
	{name: "a child of a leaf, HEAD",
		source: "eventlet/wsgi.py handle_one_response",
		method: "HEAD", path: "/latest/meta-data/hostname/x", signed: true},
	{name: "a list element named as a child: bare 500",
		source: "nova/api/metadata/base.py find_path_in_tree ('default' in ['default'], then a str index)",
		method: "GET", path: "/latest/meta-data/security-groups/default", signed: true},
	{name: "a path that is not UTF-8 once decoded: bare 500 before anything",
		source: "webob/request.py path_info (strict UTF-8) raised in oslo_middleware healthcheck process_request (req.path)",
		method: "GET", path: "/latest/meta-data/\xff", signed: true},
	{name: "a password that is not UTF-8: bare 500",
		source: "nova/api/metadata/password.py convert_password (bytes.decode('utf-8'))",
		method: "POST", path: "/openstack/latest/password", signed: true, body: "\xff\xfe"},
	{name: "a password of unknown length (chunked): bare 500",
		source: "nova/api/metadata/password.py handle_password (None > MAX_SIZE, TypeError)",
		method: "POST", path: "/openstack/latest/password", signed: true, chunked: true, body: "pw"},
	{name: "healthcheck, no Accept: text/plain OK",
		source: "oslo_middleware/healthcheck/__init__.py Healthcheck.process_request, _make_text_response; api-paste.ini [filter:healthcheck]",
		method: "GET", path: "/healthcheck"},
	{name: "healthcheck, curl's Accept",
		source: "Healthcheck._accept_order: text/plain first",
		method: "GET", path: "/healthcheck", headers: map[string]string{"Accept": "*/*"}},
	{name: "healthcheck, JSON asked for",
		source: "Healthcheck._make_json_response (json.dumps indent=4, sort_keys=True)",
		method: "GET", path: "/healthcheck", headers: map[string]string{"Accept": "application/json"}},
	{name: "healthcheck, a browser's Accept: HTML",
		source: "Healthcheck._make_html_response, HTML_RESPONSE_TEMPLATE (jinja2, detailed off)",
		method: "GET", path: "/healthcheck", headers: map[string]string{"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}},
	{name: "healthcheck, nothing acceptable: text/plain anyway",
		source: "Healthcheck._default_accept",
		method: "GET", path: "/healthcheck", headers: map[string]string{"Accept": "image/png"}},
	{name: "healthcheck, HEAD: 204",
		source: "Healthcheck.HEAD_HEALTHY_TO_STATUS_CODES; webob drops a 204's headers, eventlet adds Content-Length",
		method: "HEAD", path: "/healthcheck"},
	{name: "healthcheck, any other method is a GET",
		source: "Healthcheck.process_request (only HEAD is special)",
		method: "POST", path: "/healthcheck"},
	{name: "healthcheck after folding",
		source: "paste/urlmap.py runs before [pipeline:meta]",
		method: "GET", path: "//healthcheck"},
	{name: "healthcheck, signed requests too: it stands before the handler",
		source: "api-paste.ini [pipeline:meta] healthcheck first",
		method: "GET", path: "/healthcheck", signed: true},
	{name: "healthcheck disabled by file",
		source: "oslo_middleware/healthcheck/disable_by_file.py DisableByFileHealthcheck (api-paste.ini disable_by_file_path)",
		method: "GET", path: "/healthcheck", disable: true},
	{name: "healthcheck disabled by file, JSON",
		source: "DisableByFileHealthcheck, _make_json_response",
		method: "GET", path: "/healthcheck", disable: true, headers: map[string]string{"Accept": "application/json"}},
	{name: "healthcheck disabled by file, HEAD",
		source: "Healthcheck.HEAD_HEALTHY_TO_STATUS_CODES[False]",
		method: "HEAD", path: "/healthcheck", disable: true},
	{name: "a trailing slash is not the healthcheck: nova's handler, EC2 version 'healthcheck'",
		source: "Healthcheck.process_request (req.path != self._path); base.py get_ec2_metadata (InvalidMetadataVersion)",
		method: "GET", path: "/healthcheck/", signed: true},
	{name: "OPTIONS of a missing path: the CORS filter's empty 200",
		source: "oslo_middleware/cors.py CORS.process_response, _apply_cors_preflight_headers (non-2xx → NoContentTypeResponse 200)",
		method: "OPTIONS", path: "/latest/meta-data/nope", signed: true},
	{name: "OPTIONS without identification: the 400 becomes the empty 200",
		source: "oslo_middleware/cors.py _apply_cors_preflight_headers",
		method: "OPTIONS", path: "/latest/meta-data/"},
	{name: "OPTIONS of a document: nova ignores the method, the 2xx stands",
		source: "handler.py MetadataRequestHandler.__call__ (method unused); cors.py keeps 2xx",
		method: "OPTIONS", path: "/latest/meta-data/hostname", signed: true},
	{name: "OPTIONS of the password: its 400 becomes the empty 200",
		source: "password.py handle_password ('GET and POST only'), cors.py",
		method: "OPTIONS", path: "/openstack/latest/password", signed: true},
	{name: "OPTIONS of a bare 500 stays a bare 500: the exception passes the CORS filter",
		source: "oslo_middleware/base.py ConfigurableMiddleware.__call__ (req.get_response raises)",
		method: "OPTIONS", path: "/latest/meta-data/hostname/x", signed: true},
	{name: "a request line of 8192 bytes: eventlet's raw 414",
		source: "eventlet/wsgi.py HttpProtocol.handle_one_request (readline(url_length_limit), RESPONSE_414)",
		method: "GET", path: "/latest/meta-data/" + strings.Repeat("a", 8192-len("GET /latest/meta-data/ HTTP/1.1\r\n")), signed: true},
	{name: "a request line of 8191 bytes is read: nova's 404",
		source: "eventlet/wsgi.py MAX_REQUEST_LINE",
		method: "GET", path: "/latest/meta-data/" + strings.Repeat("a", 8191-len("GET /latest/meta-data/ HTTP/1.1\r\n")), signed: true},
	{name: "a header line of 16384 bytes: eventlet's 400",
		source: "eventlet/wsgi.py FileObjectForHeaders.readline (HeaderLineTooLong); nova/wsgi.py Server sets MAX_HEADER_LINE from [wsgi] max_header_line",
		method: "GET", path: "/latest/meta-data/hostname", signed: true,
		headers: map[string]string{"X-Big": strings.Repeat("b", 16384-len("X-Big: \r\n"))}},
	{name: "a header line of 16383 bytes is read",
		source: "nova/conf/wsgi.py max_header_line default 16384",
		method: "GET", path: "/latest/meta-data/hostname", signed: true,
		headers: map[string]string{"X-Big": strings.Repeat("b", 16383-len("X-Big: \r\n"))}},
	{name: "more than 65536 bytes of headers: eventlet's 400",
		source: "eventlet/wsgi.py MAX_TOTAL_HEADER_SIZE (HeadersTooLarge)",
		method: "GET", path: "/latest/meta-data/hostname", signed: true,
		headers: map[string]string{"X-A": strings.Repeat("a", 16000), "X-B": strings.Repeat("b", 16000),
			"X-C": strings.Repeat("c", 16000), "X-D": strings.Repeat("d", 16000), "X-E": strings.Repeat("e", 2000)}},
	{name: "mdctl's /healthz through the agent is nova's: EC2 version 'healthz' not found",
		source: "nova has no /healthz: base.py get_ec2_metadata (InvalidMetadataVersion → 404)",
		method: "GET", path: "/healthz", signed: true},
	{name: "a load balancer's X-Metadata-Provider: nova finds no subnets for it",
		source: "handler.py _get_instance_id_from_lb (list_subnets(advanced_service_providers=[id]) empty → HTTPBadRequest)",
		method: "GET", path: "/latest/meta-data/", headers: map[string]string{"X-Metadata-Provider": "lb-1", "X-Forwarded-For": "10.90.0.5",
			"X-Metadata-Provider-Signature": sign(testSecret, "lb-1")}},
}

// TestPipelineGolden pins, per case, the status, headers and body a
// deployed nova-api-metadata sends (the ones eventlet adds on the wire,
// Date and the connection's, aside: TestPipelineWire checks those).
func TestPipelineGolden(t *testing.T) {
	e := newEnv(t, nil)
	inst, _ := e.addInstance("vm1")
	var out strings.Builder
	for _, tc := range pipelineCases {
		if tc.disable {
			must(t, os.WriteFile(e.disableFile, nil, 0o644))
		}
		h := map[string]string{}
		if tc.signed {
			h = signedHeaders(inst)
		}
		for k, v := range tc.headers {
			h[k] = v
		}
		w := e.doChunked(tc.method, tc.path, h, tc.body, tc.chunked)
		if tc.disable {
			must(t, os.Remove(e.disableFile))
		}
		shown := fmt.Sprintf("%q", tc.path)
		if len(tc.path) > 100 {
			shown = fmt.Sprintf("%q… (%d bytes)", tc.path[:40], len(tc.path))
		}
		fmt.Fprintf(&out, "=== %s\n# %s\n%s %s\n%d\n", tc.name, tc.source, tc.method, shown, w.Code)
		keys := make([]string, 0, len(w.Header()))
		for k := range w.Header() {
			// X-Request-Id is mdctl's echo, different each run; a nil
			// header is one Go does not send (Date).
			if k != "X-Request-Id" && w.Header()[k] != nil {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			fmt.Fprintf(&out, "%s: %s\n", k, strings.Join(w.Header()[k], ", "))
		}
		fmt.Fprintf(&out, "%q\n", w.Body.String())
		if cl := w.Header().Get("Content-Length"); tc.method != "HEAD" && cl != fmt.Sprint(w.Body.Len()) {
			t.Errorf("%s: Content-Length %s for %d bytes", tc.name, cl, w.Body.Len())
		}
	}
	golden(t, filepath.Join("testdata", "pipeline.golden"), out.String())
}

// TestPipelineWire checks on a real connection what eventlet puts on the
// wire around a bare 500: a Date, no Server header, Connection: close,
// and the connection closed after it; and that a good answer keeps the
// connection for the next request.
func TestPipelineWire(t *testing.T) {
	e := newEnv(t, nil)
	inst, _ := e.addInstance("vm1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Run(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })

	conn, err := net.Dial("tcp", ln.Addr().String())
	must(t, err)
	defer conn.Close()
	must(t, conn.SetDeadline(time.Now().Add(30*time.Second)))
	rd := bufio.NewReader(conn)
	send := func(path string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, "http://"+ln.Addr().String()+path, nil)
		must(t, err)
		for k, v := range signedHeaders(inst) {
			req.Header.Set(k, v)
		}
		must(t, req.Write(conn))
		resp, err := http.ReadResponse(rd, req)
		must(t, err)
		return resp
	}
	ok := send("/latest/meta-data/hostname")
	ok.Body.Close()
	// eventlet sends a Date and no Server header (HttpProtocol's write
	// adds only Date and the connection's headers).
	if ok.StatusCode != 200 || ok.Close || ok.Header.Get("Date") == "" || ok.Header.Get("Server") != "" {
		t.Fatalf("hostname: %d, close %v, %v", ok.StatusCode, ok.Close, ok.Header)
	}
	bad := send("/latest/meta-data/hostname/x")
	bad.Body.Close()
	if bad.StatusCode != 500 || !bad.Close || bad.Header.Get("Date") == "" || bad.Header.Get("Server") != "" ||
		bad.Header.Get("Content-Type") != "text/plain" || bad.ContentLength != 0 {
		t.Errorf("bare 500: %d close=%v %v", bad.StatusCode, bad.Close, bad.Header)
	}
	if _, err := rd.ReadByte(); err == nil {
		t.Error("the connection stayed open after the bare 500")
	}

	// eventlet's raw 414 carries no Date.
	conn2, err := net.Dial("tcp", ln.Addr().String())
	must(t, err)
	defer conn2.Close()
	must(t, conn2.SetDeadline(time.Now().Add(30*time.Second)))
	conn, rd = conn2, bufio.NewReader(conn2)
	long := send("/" + strings.Repeat("x", 8192))
	long.Body.Close()
	if long.StatusCode != 414 || !long.Close || long.Header.Get("Date") != "" || long.ContentLength != 0 {
		t.Errorf("414: %d close=%v %v", long.StatusCode, long.Close, long.Header)
	}
}
