package events

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends e as encoding/json would marshal it, byte for byte,
// without reflection: the admin stream encodes one event per request, and
// reflection-based encoding cost more than the request it described.
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"time":"`...)
	b = e.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendField(b, "request_id", e.RequestID, false)
	b = appendField(b, "hop", e.Hop, false)
	b = appendField(b, "namespace", e.Namespace, true)
	b = appendField(b, "mode", e.Mode, true)
	b = appendField(b, "source_ip", e.SourceIP, true)
	b = appendField(b, "instance_id", e.InstanceID, true)
	b = appendField(b, "instance_name", e.InstanceName, true)
	b = appendField(b, "project_id", e.ProjectID, true)
	b = appendField(b, "method", e.Method, false)
	b = appendField(b, "path", e.Path, false)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.Bytes, 10)
	b = append(b, `,"duration_ns":`...)
	b = strconv.AppendInt(b, int64(e.Duration), 10)
	b = appendField(b, "error", e.Error, true)
	if e.Probe {
		b = append(b, `,"probe":true`...)
	}
	return append(b, '}')
}

func appendField(b []byte, name, v string, omitEmpty bool) []byte {
	if omitEmpty && v == "" {
		return b
	}
	b = append(b, `,"`...)
	b = append(b, name...)
	b = append(b, `":`...)
	return appendString(b, v)
}

const hexDigits = "0123456789abcdef"

// appendString quotes s as encoding/json does with its default HTML
// escaping: <, > and & as \u00XX, U+2028 and U+2029 escaped, invalid UTF-8
// as \ufffd.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// DecodeJSON reads one event as encoding/json would unmarshal it into a
// zero Event. Lines as AppendJSON writes them (no escapes, plain integers)
// take a fast path without reflection: a live view decodes every event of
// a busy serve, and encoding/json cost several times what serve spent on
// the event. Anything else goes to encoding/json, so the result is the
// same for every input.
func DecodeJSON(line []byte) (Event, error) {
	if e, ok := decodeFast(line); ok {
		return e, nil
	}
	var e Event
	err := json.Unmarshal(line, &e)
	return e, err
}

// decodeFast parses {"key":value,...} with known keys, strings without
// escapes or control characters and integers; ok is false on anything
// else, for encoding/json to decide.
func decodeFast(b []byte) (e Event, ok bool) {
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return e, false
	}
	i := 1
	if b[i] == '}' {
		return e, i == len(b)-1
	}
	for {
		key, n, ok := fastString(b, i)
		if !ok || n >= len(b) || b[n] != ':' {
			return e, false
		}
		if i, ok = setField(&e, key, b, n+1); !ok || i >= len(b) {
			return e, false
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			return e, i == len(b)-1
		default:
			return e, false
		}
	}
}

// setField decodes the value at b[i:] into e's field named key and returns
// where the value ends.
func setField(e *Event, key []byte, b []byte, i int) (int, bool) {
	var dst *string
	switch string(key) {
	case "time":
		s, n, ok := fastString(b, i)
		if !ok || e.Time.UnmarshalText(s) != nil {
			return 0, false
		}
		return n, true
	case "status":
		v, n, ok := fastInt(b, i)
		e.Status = int(v) // int is 64 bits where serve runs, as strconv checked
		return n, ok
	case "bytes":
		v, n, ok := fastInt(b, i)
		e.Bytes = v
		return n, ok
	case "duration_ns":
		v, n, ok := fastInt(b, i)
		e.Duration = time.Duration(v)
		return n, ok
	case "request_id":
		dst = &e.RequestID
	case "hop":
		dst = &e.Hop
	case "namespace":
		dst = &e.Namespace
	case "mode":
		dst = &e.Mode
	case "source_ip":
		dst = &e.SourceIP
	case "instance_id":
		dst = &e.InstanceID
	case "instance_name":
		dst = &e.InstanceName
	case "project_id":
		dst = &e.ProjectID
	case "method":
		dst = &e.Method
	case "path":
		dst = &e.Path
	case "error":
		dst = &e.Error
	default:
		return 0, false
	}
	s, n, ok := fastString(b, i)
	if !ok {
		return 0, false
	}
	*dst = internString(s)
	return n, true
}

// internString shares the few hop and method names every event carries
// instead of allocating them each time.
func internString(s []byte) string {
	switch string(s) {
	case HopProxy:
		return HopProxy
	case HopAgent:
		return HopAgent
	case HopAPI:
		return HopAPI
	case "GET":
		return "GET"
	}
	return string(s)
}

// fastString reads the string starting at b[i] ('"'): its contents and
// the index after the closing quote; ok is false when it holds escapes,
// control characters or invalid UTF-8.
func fastString(b []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			s = b[i+1 : j]
			return s, j + 1, utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// fastInt reads a JSON integer (no fraction, no exponent, no leading
// zeros) at b[i:] that fits in an int64.
func fastInt(b []byte, i int) (v int64, next int, ok bool) {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	start := j
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	if j == start || (b[start] == '0' && j-start > 1) {
		return 0, 0, false
	}
	if j < len(b) && (b[j] == '.' || b[j] == 'e' || b[j] == 'E') {
		return 0, 0, false
	}
	v, err := strconv.ParseInt(string(b[i:j]), 10, 64)
	return v, j, err == nil
}
