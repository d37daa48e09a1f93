package tui

import (
	"fmt"
	"strings"

	"github.com/mdctl/mdctl/server/events"
)

// filter is what `/` typed: instance=, path=, status= terms, and bare
// words that must appear in the instance or the path.
type filter struct {
	instance, path, status string
	words                  []string
	text                   string
}

func parseFilter(s string) (filter, error) {
	f := filter{text: strings.TrimSpace(s)}
	for _, tok := range strings.Fields(s) {
		k, v, ok := strings.Cut(tok, "=")
		if !ok {
			f.words = append(f.words, strings.ToLower(tok))
			continue
		}
		switch k {
		case "instance", "i":
			f.instance = v
		case "path", "p":
			f.path = v
		case "status", "s":
			if !events.ValidStatusFilter(v) {
				return filter{}, fmt.Errorf("status=%s: use a code (404), a class (5xx) or error", v)
			}
			f.status = v
		default:
			return filter{}, fmt.Errorf("%s=: filter by instance=, path= or status=", k)
		}
	}
	return f, nil
}

func (f filter) match(r *request) bool {
	inst := r.instance()
	out := r.outer()
	if f.instance != "" && !strings.Contains(inst, f.instance) {
		return false
	}
	if f.path != "" && !strings.Contains(out.Path, f.path) {
		return false
	}
	if f.status != "" {
		e := out
		e.Error = ""
		if r.failed() {
			e.Error = "failed"
		}
		if !events.StatusMatches(f.status, e) {
			return false
		}
	}
	for _, w := range f.words {
		if !strings.Contains(strings.ToLower(inst), w) && !strings.Contains(strings.ToLower(out.Path), w) {
			return false
		}
	}
	return true
}
