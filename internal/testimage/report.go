package testimage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Report is what mdctl-report wrote on ttyS1 once cloud-final was over.
type Report struct {
	Status         string // `cloud-init status --long`'s "status:" word: done, error, running, disabled
	StatusRC       string // its exit code
	Datasource     string // result.json's v1.datasource
	Errors         []string
	Stages         map[string]Stage // status.json's v1 stages by name: init-local, init, modules-config, modules-final
	Hostname       string
	AuthorizedKeys string
	Runcmd         string // /var/tmp/mdctl-runcmd, written by the tests' user-data runcmd
	CloudInitLog   string
	Sections       map[string]string // every section's text, by its name
}

// Stage is one stage in status.json.
type Stage struct {
	Start    *float64 `json:"start"`
	Finished *float64 `json:"finished"`
	Errors   []string `json:"errors"`
}

// Ran says the stage started and finished.
func (s Stage) Ran() bool { return s.Start != nil && s.Finished != nil }

const (
	reportBegin = "=== mdctl-report begin"
	reportEnd   = "=== mdctl-report end"
)

// Complete says whether b holds a whole report.
func Complete(b []byte) bool {
	i := bytes.Index(b, []byte(reportBegin))
	return i >= 0 && bytes.Contains(b[i:], []byte(reportEnd))
}

// ParseReport reads the last whole report in b.
func ParseReport(b []byte) (Report, error) {
	text := strings.ReplaceAll(string(b), "\r", "")
	i := strings.LastIndex(text, reportBegin)
	if i < 0 {
		return Report{}, fmt.Errorf("no %q in the report port", reportBegin)
	}
	body, _, ok := strings.Cut(text[i+len(reportBegin):], reportEnd)
	if !ok {
		return Report{}, fmt.Errorf("report not finished (no %q)", reportEnd)
	}
	r := Report{Sections: map[string]string{}}
	name := ""
	var cur []string
	flush := func() {
		if name != "" {
			r.Sections[name] = strings.TrimSpace(strings.Join(cur, "\n"))
		}
	}
	for _, line := range strings.Split(body, "\n") {
		if n, ok := strings.CutPrefix(line, "--- "); ok {
			flush()
			name, cur = n, nil
			continue
		}
		cur = append(cur, line)
	}
	flush()
	for _, line := range strings.Split(r.Sections["status"], "\n") {
		if v, ok := strings.CutPrefix(line, "status: "); ok {
			r.Status = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "status-rc="); ok {
			r.StatusRC = strings.TrimSpace(v)
		}
	}
	var result struct {
		V1 struct {
			Datasource string   `json:"datasource"`
			Errors     []string `json:"errors"`
		} `json:"v1"`
	}
	if s := r.Sections["result.json"]; s != "" {
		if err := json.Unmarshal([]byte(s), &result); err != nil {
			return r, fmt.Errorf("result.json: %w", err)
		}
		r.Datasource, r.Errors = result.V1.Datasource, result.V1.Errors
	}
	var status struct {
		V1 map[string]json.RawMessage `json:"v1"`
	}
	r.Stages = map[string]Stage{}
	if s := r.Sections["status.json"]; s != "" {
		if err := json.Unmarshal([]byte(s), &status); err != nil {
			return r, fmt.Errorf("status.json: %w", err)
		}
		for k, raw := range status.V1 {
			var st Stage
			if json.Unmarshal(raw, &st) == nil && (st.Start != nil || st.Errors != nil) {
				r.Stages[k] = st
			}
		}
	}
	r.Hostname = r.Sections["hostname"]
	r.AuthorizedKeys = r.Sections["authorized_keys"]
	r.Runcmd = r.Sections["runcmd"]
	r.CloudInitLog = r.Sections["cloud-init.log"]
	return r, nil
}
