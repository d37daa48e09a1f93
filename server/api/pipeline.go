package api

import (
	"errors"
	"html"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"unicode/utf8"

	"github.com/mdctl/mdctl/server/metadata"
)

// A deployed nova-api-metadata is not the bare MetadataRequestHandler: it
// runs nova-common's api-paste.ini on eventlet's wsgi server,
//
//	[composite:metadata]  use = egg:Paste#urlmap   (folds "//" in paths)
//	[pipeline:meta]       healthcheck cors http_proxy_to_wsgi metaapp
//
// and this file is what those stages add: the folded path, oslo's
// /healthcheck, the CORS filter's answer to OPTIONS, and eventlet's bare
// 500 for an exception nothing caught. http_proxy_to_wsgi changes nothing
// a client sees while enable_proxy_headers_parsing is off (its default).

// HealthcheckPath is oslo.middleware's [healthcheck] path default.
const HealthcheckPath = "/healthcheck"

// HealthcheckDisableName is the file, in serve's data directory, whose
// presence makes /healthcheck answer 503 (oslo's disable_by_file_path;
// nova-common sets /etc/nova/healthcheck_disable).
const HealthcheckDisableName = "healthcheck_disable"

// HealthPath is mdctl's own health check, for operators and probes; see
// Server.health.
const HealthPath = "/healthz"

// The writers below set only the headers of their answer: the request id
// echoed (reqid.go) is mdctl's and stays.

// writeBare500 is eventlet's answer to an exception the application let
// out (eventlet/wsgi.py HttpProtocol.handle_one_response): "500 Internal
// Server Error", Content-Type text/plain, an empty body (the traceback only
// with debug on, which nova never sets), and the connection closed. nova's
// metadata pipeline has no fault wrapper, so a TypeError in the handler (a
// child of a leaf), a UnicodeDecodeError (a non-UTF-8 password, a non-UTF-8
// path) or a database error ends here, not in a webob page.
func writeBare500(w http.ResponseWriter) {
	h := w.Header()
	h["Content-Type"] = []string{"text/plain"}
	h["Content-Length"] = clenZero
	h["Connection"] = []string{"close"}
	w.WriteHeader(http.StatusInternalServerError)
}

// writeCORSPreflight is oslo's CORS filter answering an OPTIONS request
// whose answer was not 2xx (oslo_middleware/cors.py
// _apply_cors_preflight_headers): it replaces it with an empty 200 of no
// content type (base.NoContentTypeResponse), and with no [cors]
// allowed_origin configured (nova's default) adds no CORS headers.
func writeCORSPreflight(w http.ResponseWriter) {
	h := w.Header()
	delete(h, "Content-Type")
	h["Content-Length"] = clenZero
	w.WriteHeader(http.StatusOK)
}

// healthcheck answers HealthcheckPath as oslo.middleware's Healthcheck
// filter (oslo_middleware/healthcheck/__init__.py process_request) with
// api-paste.ini's backend, disable_by_file: healthy unless the file
// Options.HealthcheckDisableFile exists. GET (and any method but HEAD)
// negotiates text/plain, text/html or application/json in that order of
// preference, text/plain when nothing is acceptable; HEAD is 204 (503 when
// disabled) with no body.
func (s *Server) healthcheck(w http.ResponseWriter, r *http.Request) {
	reason, healthy := "OK", true
	if s.healthDisable != "" {
		if _, err := os.Stat(s.healthDisable); err == nil {
			reason, healthy = "DISABLED BY FILE", false
		} else if !errors.Is(err, fs.ErrNotExist) {
			// os.path.exists is False on any error: still healthy.
			s.log.Debug("healthcheck disable file", "path", s.healthDisable, "error", err)
		}
	}
	status := http.StatusOK
	if !healthy {
		status = http.StatusServiceUnavailable
	}
	h := w.Header()
	if r.Method == http.MethodHead {
		if healthy {
			// webob drops both headers of a 204; eventlet adds the length.
			h["Content-Length"] = clenZero
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h["Content-Type"] = ctypePlain
		h["Content-Length"] = clenZero
		w.WriteHeader(status)
		return
	}
	accept, present := acceptHeader(r)
	var body string
	switch bestOffer(accept, present, healthOffers[:]) {
	case "text/html":
		h["Content-Type"] = ctypeHTML
		body = healthHTML(reason)
	case "application/json":
		h["Content-Type"] = ctypeJSON
		// json.dumps(..., indent=4, sort_keys=True)
		body = "{\n    \"detailed\": false,\n    \"reasons\": [\n        " + pyJSONString(reason) + "\n    ]\n}"
	default:
		h["Content-Type"] = ctypePlain
		body = reason
	}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// healthOffers is the Healthcheck filter's _accept_order.
var healthOffers = [...]string{"text/plain", "text/html", "application/json"}

// healthHTML is HTML_RESPONSE_TEMPLATE rendered by jinja2 with detailed
// off and one result, as oslo renders it (then strip()ped).
func healthHTML(reason string) string {
	return "<HTML>\n<HEAD><TITLE>Healthcheck Status</TITLE></HEAD>\n<BODY>\n\n" +
		"<H2>Result of 1 checks:</H2>\n<TABLE bgcolor=\"#ffffff\" border=\"1\">\n<TBODY>\n<TR>\n\n" +
		"<TH>\nReason\n</TH>\n</TR>\n<TR>\n\n    <TD>" + html.EscapeString(reason) + "</TD>\n\n</TR>\n" +
		"</TBODY>\n</TABLE>\n<HR></HR>\n\n</BODY>\n</HTML>"
}

// eventlet's limits on what it reads (eventlet/wsgi.py): the request line
// is read with readline(url_length_limit), MAX_REQUEST_LINE by default
// (nova-api-metadata passes no max_url_len); each header line with
// MAX_HEADER_LINE, which nova's wsgi.Server sets from [wsgi]
// max_header_line; all header lines together may not pass
// MAX_TOTAL_HEADER_SIZE.
const (
	eventletMaxRequestLine = 8192
	novaMaxHeaderLine      = 16384
	eventletMaxHeaders     = 65536
)

// writeEventletRefusal answers a request eventlet refuses before any WSGI
// application runs, as its raw answers do: the status, Connection: close,
// Content-Length: 0 and nothing else, not even a Date
// (HttpProtocol.handle_one_request, RESPONSE_414 and the 400s "Header Line
// Too Long" and "Headers Too Large"; Go's reason phrase is its own). It
// returns false when eventlet would read the request.
func writeEventletRefusal(w http.ResponseWriter, r *http.Request) bool {
	code := 0
	uri := r.RequestURI
	if uri == "" { // a request handed over in process
		uri = r.URL.RequestURI()
	}
	if len(r.Method)+1+len(uri)+1+len(r.Proto)+2 >= eventletMaxRequestLine {
		code = http.StatusRequestURITooLong
	} else {
		total := 2 // the blank line that ends the headers
		line := func(n int) {
			total += n
			if n >= novaMaxHeaderLine {
				code = http.StatusBadRequest
			}
		}
		if r.Host != "" { // Go keeps Host apart from the header map
			line(len("Host: ") + len(r.Host) + 2)
		}
		for k, vs := range r.Header {
			for _, v := range vs {
				line(len(k) + 2 + len(v) + 2)
			}
		}
		if total > eventletMaxHeaders {
			code = http.StatusBadRequest
		}
	}
	if code == 0 {
		return false
	}
	h := w.Header()
	h["Connection"] = []string{"close"}
	h["Content-Length"] = clenZero
	h["Date"] = nil // suppresses Go's
	delete(h, "X-Request-Id")
	w.WriteHeader(code)
	return true
}

// pipelinePath is the path the stages after urlmap see, and ok is false
// when webob cannot decode it: Request.path_info decodes PATH_INFO as
// strict UTF-8, and the first stage to ask (healthcheck's req.path)
// raises, so eventlet answers its bare 500.
func pipelinePath(r *http.Request) (p string, ok bool) {
	p = metadata.PipelinePath(r.URL.Path)
	return p, utf8.ValidString(p)
}
