package api

import (
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Explanations nova passes to webob's exceptions, and webob's defaults for
// the exceptions nova raises bare. Guests and the agent see these bytes.
const (
	explainNotFound     = "The resource could not be found."
	explainConflict     = "There was a conflict when trying to complete your request."
	explainUnknown      = "An unknown error has occurred. Please try your request again."
	explainBadSignature = "Invalid proxy request signature."
	explainTooLarge     = "Request is too large."
	explainMethods      = "GET and POST only are supported."
)

// webob's "text/plain; charset=UTF-8" style: text types carry the charset
// of the default response they replace, other types go bare.
var (
	ctypeHTML  = []string{"text/html; charset=UTF-8"}
	ctypePlain = []string{"text/plain; charset=UTF-8"}
	ctypeJSON  = []string{"application/json"}
	clenZero   = []string{"0"}
)

// errorPage is one webob HTTP exception: status and explanation.
type errorPage struct {
	code        int
	explanation string
}

// writeError answers like a webob exception raised inside nova's wsgify
// app: the body format follows the request's Accept header exactly as
// webob.exc.WSGIHTTPException.generate_response chooses it, and a HEAD
// gets webob's empty text/html answer. On its way out the pipeline's CORS
// filter turns it into an empty 200 for OPTIONS (writeCORSPreflight).
func writeError(w http.ResponseWriter, r *http.Request, e errorPage) {
	if r.Method == http.MethodOptions {
		writeCORSPreflight(w)
		return
	}
	h := w.Header()
	if r.Method == http.MethodHead {
		h["Content-Type"] = ctypeHTML
		h["Content-Length"] = clenZero
		w.WriteHeader(e.code)
		return
	}
	accept, present := acceptHeader(r)
	ctype, body := renderError(e, accept, present)
	h["Content-Type"] = ctype
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(e.code)
	_, _ = w.Write(body)
}

// acceptHeader joins repeated Accept headers as a WSGI server does; ok is
// false when the request had none.
func acceptHeader(r *http.Request) (string, bool) {
	v, ok := r.Header["Accept"]
	if !ok {
		return "", false
	}
	return strings.Join(v, ", "), true
}

// renderError builds the body webob would: text/html, application/json or
// text/plain.
func renderError(e errorPage, accept string, present bool) ([]string, []byte) {
	status := strconv.Itoa(e.code) + " " + http.StatusText(e.code)
	switch negotiate(accept, present) {
	case "text/html":
		// body_template with html_escape; the template's newlines stay.
		body := htmlEscape(e.explanation) + "<br /><br />\n\n\n"
		page := "<html>\n <head>\n  <title>" + status + "</title>\n </head>\n <body>\n  <h1>" +
			status + "</h1>\n  " + body + "\n </body>\n</html>"
		return ctypeHTML, []byte(page)
	case "application/json":
		body := e.explanation + "<br /><br />\n\n\n"
		js := `{"message": ` + pyJSONString(body) + `, "code": ` + pyJSONString(status) +
			`, "title": ` + pyJSONString(http.StatusText(e.code)) + `}`
		return ctypeJSON, []byte(js)
	default:
		return ctypePlain, []byte(status + "\n\n" + stripTags(e.explanation+"<br /><br />\n\n\n"))
	}
}

// stripTags is webob.exc.strip_tags for the bodies we produce: newlines
// become spaces, carriage returns vanish, <br /> becomes a newline.
func stripTags(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "\r", "")
	return strings.ReplaceAll(s, "<br />", "\n")
}

// htmlEscape is Python's html.escape(s, quote=True) followed by webob's
// ascii xmlcharrefreplace.
func htmlEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch c {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '"':
			b.WriteString("&quot;")
		case '\'':
			b.WriteString("&#x27;")
		default:
			if c < utf8.RuneSelf {
				b.WriteRune(c)
			} else {
				b.WriteString("&#" + strconv.Itoa(int(c)) + ";")
			}
		}
	}
	return b.String()
}

// pyJSONString encodes s as Python's json.dumps does by default
// (ensure_ascii, no HTML escaping).
func pyJSONString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			switch {
			case c < 0x20 || (c >= 0x80 && c <= 0xffff):
				b.WriteString(`\u` + hex4(int(c)))
			case c > 0xffff:
				c -= 0x10000
				b.WriteString(`\u` + hex4(0xd800+int(c>>10)) + `\u` + hex4(0xdc00+int(c&0x3ff)))
			default:
				b.WriteRune(c)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

func hex4(n int) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[n>>12&0xf], digits[n>>8&0xf], digits[n>>4&0xf], digits[n&0xf]})
}

// errorOffers are what webob's generate_response offers for an error page.
var errorOffers = [...]string{"text/html", "application/json"}

// negotiate picks between webob's offers text/html and application/json
// for an error page; "" means the plain-text page. No header at all (webob
// sees "") and an empty header both give plain text; an unparsable header
// accepts every offer, so html.
func negotiate(accept string, present bool) string {
	if !present || strings.TrimSpace(accept) == "" {
		return ""
	}
	return bestOffer(accept, true, errorOffers[:])
}

// bestOffer is webob.acceptparse's acceptable_offers(offers)[0]: the offer
// of the highest q, the earlier one on a tie, "" when none is acceptable.
// No header and an unparsable one accept every offer, so the first.
func bestOffer(accept string, present bool, offers []string) string {
	if !present {
		return offers[0]
	}
	ranges, ok := parseAccept(accept)
	if !ok {
		return offers[0]
	}
	best, bestQ := "", 0.0
	for _, offer := range offers {
		q, spec := 0.0, 0
		for _, rg := range ranges {
			s := rg.specificity(offer)
			if s > spec { // the first range of the highest specificity wins
				q, spec = rg.q, s
			}
		}
		if spec > 0 && q > bestQ { // ties keep the earlier offer
			best, bestQ = offer, q
		}
	}
	return best
}

type mediaRange struct {
	typ, sub  string
	hasParams bool
	q         float64
}

// specificity is webob's ranking of how closely a range names an offer
// (offers carry no parameters): 0 no match, 1 */*, 2 type/*, 3 type/sub.
func (m mediaRange) specificity(offer string) int {
	ot, os, _ := strings.Cut(offer, "/")
	switch {
	case m.typ == "*" && m.sub == "*":
		return 1
	case m.sub == "*":
		if m.typ == ot {
			return 2
		}
	case m.typ == ot && m.sub == os && !m.hasParams:
		return 3
	}
	return 0
}

// parseAccept parses an RFC 7231 Accept header as strictly as webob's
// regular expression; ok is false for anything it would call invalid.
func parseAccept(v string) ([]mediaRange, bool) {
	var out []mediaRange
	for _, el := range splitOutsideQuotes(v, ',') {
		el = strings.Trim(el, " \t")
		if el == "" {
			continue // the list rule allows empty elements
		}
		parts := splitOutsideQuotes(el, ';')
		typ, sub, ok := strings.Cut(strings.Trim(parts[0], " \t"), "/")
		if !ok || !isToken(typ) || !isToken(sub) || (typ == "*" && sub != "*") {
			return nil, false
		}
		m := mediaRange{typ: strings.ToLower(typ), sub: strings.ToLower(sub), q: 1}
		for _, p := range parts[1:] {
			name, val, ok := strings.Cut(strings.Trim(p, " \t"), "=")
			if !ok || !isToken(name) || !(isToken(val) || isQuoted(val)) {
				return nil, false
			}
			if strings.EqualFold(name, "q") {
				q, ok := parseQ(val)
				if !ok {
					return nil, false
				}
				m.q = q
				break // what follows q is accept-ext, ignored
			}
			m.hasParams = true
		}
		out = append(out, m)
	}
	return out, true
}

func parseQ(v string) (float64, bool) {
	if len(v) == 0 || len(v) > 5 || (v[0] != '0' && v[0] != '1') {
		return 0, false
	}
	if len(v) > 1 && v[1] != '.' {
		return 0, false
	}
	for i := 2; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' || (v[0] == '1' && v[i] != '0') {
			return 0, false
		}
	}
	q, err := strconv.ParseFloat(strings.TrimSuffix(v, "."), 64)
	return q, err == nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func isQuoted(s string) bool {
	return len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"'
}

func splitOutsideQuotes(s string, sep byte) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && quoted:
			i++
		case s[i] == '"':
			quoted = !quoted
		case s[i] == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
