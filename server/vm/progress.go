package vm

import (
	"regexp"
	"strings"
)

// Cloud-init's status words (`cloud-init status`).
const (
	StatusNotRun  = "not run"
	StatusRunning = "running"
	StatusDone    = "done"
	StatusError   = "error"
)

// Stages are cloud-init's four boot stages in order, by the names its
// console banner uses ("Cloud-init v. 22.4.2 running 'init-local' at ...")
// and the systemd units that run them.
var Stages = []struct{ Name, Unit string }{
	{"init-local", "cloud-init-local.service"},
	{"init", "cloud-init.service"},
	{"modules:config", "cloud-config.service"},
	{"modules:final", "cloud-final.service"},
}

// Progress is what a console says about cloud-init.
type Progress struct {
	Stages     []string `json:"stages"`               // stage names seen starting, in order
	Finished   bool     `json:"finished"`             // the "finished at" banner of the final stage
	Datasource string   `json:"datasource,omitempty"` // as the finished banner names it
	Status     string   `json:"status"`               // StatusNotRun, StatusRunning, StatusDone, StatusError
	Errors     []string `json:"errors,omitempty"`     // ERROR/CRITICAL log lines, failed cloud-init units, tracebacks
	Warnings   []string `json:"warnings,omitempty"`   // WARNING log lines
	// Kernel says the guest's kernel started at all (its banner).
	Kernel bool `json:"kernel"`
}

var (
	ansi       = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)
	stageLine  = regexp.MustCompile(`Cloud-init v\. \S+ running '([a-z:-]+)'`)
	finishLine = regexp.MustCompile(`Cloud-init v\. \S+ finished at .*?Datasource (.*?)\.\s+Up [0-9.]+ seconds`)
	logLevel   = regexp.MustCompile(`\.py\[(WARNING|ERROR|CRITICAL)\]: `)
	failedUnit = regexp.MustCompile(`\[FAILED\] Failed to start (cloud-[a-z-]+\.service)`)
)

// ReadProgress reads a serial console's text (escape sequences, carriage
// returns and the hang-ups of getty and all) for cloud-init's progress.
func ReadProgress(console []byte) Progress {
	p := Progress{Status: StatusNotRun}
	text := ansi.ReplaceAllString(string(console), "")
	seen := map[string]bool{}
	failed := false
	for _, line := range strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == '\r' }) {
		line = strings.TrimSpace(line)
		switch {
		case strings.Contains(line, kernelBanner):
			p.Kernel = true
		case stageLine.MatchString(line):
			s := stageLine.FindStringSubmatch(line)[1]
			if !seen[s] {
				seen[s] = true
				p.Stages = append(p.Stages, s)
			}
		case finishLine.MatchString(line):
			p.Finished = true
			p.Datasource = finishLine.FindStringSubmatch(line)[1]
		case failedUnit.MatchString(line):
			failed = true
			p.Errors = append(p.Errors, line)
		case strings.HasPrefix(line, "Traceback "):
			p.Errors = append(p.Errors, line)
		case logLevel.MatchString(line):
			if logLevel.FindStringSubmatch(line)[1] == "WARNING" {
				p.Warnings = append(p.Warnings, line)
			} else {
				p.Errors = append(p.Errors, line)
			}
		}
	}
	switch {
	case (p.Finished || failed) && len(p.Errors) > 0:
		p.Status = StatusError
	case p.Finished:
		p.Status = StatusDone
	case len(p.Stages) > 0:
		p.Status = StatusRunning
	}
	return p
}
