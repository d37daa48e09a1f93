package vmspec

import (
	"path/filepath"
	"regexp"
	"strings"
)

// Where the lab keeps its VMs: <data-dir>/LabVMsDir/<instance uuid>/, the
// serial console there in ConsoleFile.
const (
	LabVMsDir   = "lab-vms"
	ConsoleFile = "console.log"
)

// ConsolePath is where the lab keeps a VM's serial console (the launcher
// writes it, `lab console` and trace read it):
// <data-dir>/lab-vms/<instance uuid>/console.log.
func ConsolePath(dataDir, instanceID string) string {
	return filepath.Join(dataDir, LabVMsDir, instanceID, ConsoleFile)
}

// Console is what cloud-init's own lines on a VM's console say about its
// metadata (cloud-init 22.x wording: cmd/main.py's welcome banner,
// url_helper's wait_for_url, DataSourceOpenStack, cc_final_message).
type Console struct {
	// Stages are the stages that announced themselves, in order
	// ("init-local", "init", "modules:config", "modules:final").
	Stages []string
	// Datasource is the one cloud-init settled on, from the final message
	// ("DataSourceOpenStack [net,ver=2]"); "" until it finished.
	Datasource string
	// Finished: cloud-final printed its final message.
	Finished bool
	// Failures are its "Calling '<url>' failed [n/ms]" lines for the
	// metadata address, the last few.
	Failures []string
	// GaveUp is the line where it gave up on a metadata service ("Giving
	// up on OpenStack md…", "No active metadata service found"); "" if none.
	GaveUp string
	// Errors are its ERROR/CRITICAL log lines, tracebacks and failed
	// cloud-init units; Warnings its WARNING lines (the metadata failures
	// above among them).
	Errors, Warnings []string
	// Kernel: the guest's kernel printed its banner (anything booted).
	Kernel bool
	// UnitFailed: systemd said a cloud-init unit failed.
	UnitFailed bool
	// Panic is the kernel's panic line ("" for none): the guest is dead.
	Panic string
	// Lines are the lines above, in console order: the evidence to show.
	Lines []string
}

// Cloud-init's status words (`cloud-init status`).
const (
	StatusNotRun  = "not run"
	StatusRunning = "running"
	StatusDone    = "done"
	StatusError   = "error"
)

// Status is cloud-init's word for where it is, as far as the console
// tells: done or error once the final stage finished (or a unit failed),
// running once a stage started, not run before.
func (c Console) Status() string {
	switch {
	case c.Panic != "" || (c.Finished || c.UnitFailed) && len(c.Errors) > 0:
		return StatusError
	case c.Finished:
		return StatusDone
	case len(c.Stages) > 0:
		return StatusRunning
	}
	return StatusNotRun
}

var (
	stageRE    = regexp.MustCompile(`Cloud-init v\. \S+ running '([^']+)'`)
	finishedRE = regexp.MustCompile(`Cloud-init v\. \S+ finished at .*Datasource (.+?)\.\s+Up `)
	callingRE  = regexp.MustCompile(`Calling '(http://169\.254\.169\.254[^']*|http://\[fe80::a9fe:a9fe[^']*)' failed \[[^\]]*\]`)
	gaveUpRE   = regexp.MustCompile(`Giving up on (OpenStack )?md from .*|No active metadata service found`)
	ansiRE     = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)
	levelRE    = regexp.MustCompile(`\.py\[(WARNING|ERROR|CRITICAL)\]: `)
	failedRE   = regexp.MustCompile(`\[FAILED\] Failed to start (cloud-[a-z-]+\.service)`)
)

// kernelBanner is the first line every Linux kernel prints on its console.
const kernelBanner = "Linux version "

// maxFailures bounds Console.Failures (a VM retries for two minutes).
const maxFailures = 3

// ParseConsole reads cloud-init's lines out of a console capture (escape
// sequences, carriage returns and getty's hang-ups and all). A later
// boot's lines (a stage banner after a final message) start it over.
func ParseConsole(text string) Console {
	var c Console
	text = ansiRE.ReplaceAllString(text, "")
	for _, line := range strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if strings.Contains(line, kernelBanner) {
			c.Kernel = true
			continue
		}
		if i := strings.Index(line, "Kernel panic - not syncing"); i >= 0 && c.Panic == "" {
			c.Panic = strings.TrimSpace(line[i:])
			c.Errors = append(c.Errors, c.Panic)
			continue
		}
		if m := levelRE.FindStringSubmatch(line); m != nil {
			if m[1] == "WARNING" {
				c.Warnings = append(c.Warnings, strings.TrimSpace(line))
			} else {
				c.Errors = append(c.Errors, strings.TrimSpace(line))
			}
		}
		switch {
		case stageRE.MatchString(line):
			stage := stageRE.FindStringSubmatch(line)[1]
			if c.Finished || stage == "init-local" {
				c = Console{Kernel: c.Kernel}
			}
			c.Stages = append(c.Stages, stage)
		case failedRE.MatchString(line):
			c.UnitFailed = true
			c.Errors = append(c.Errors, strings.TrimSpace(line))
		case strings.Contains(line, "Traceback (most recent call last)"):
			c.Errors = append(c.Errors, strings.TrimSpace(line))
			continue
		case finishedRE.MatchString(line):
			c.Finished, c.Datasource = true, finishedRE.FindStringSubmatch(line)[1]
		case callingRE.MatchString(line):
			c.Failures = append(c.Failures, strings.TrimSpace(line))
			if len(c.Failures) > maxFailures {
				c.Failures = c.Failures[1:]
			}
		case gaveUpRE.MatchString(line):
			c.GaveUp = strings.TrimSpace(line)
		default:
			continue
		}
		c.Lines = append(c.Lines, strings.TrimSpace(line))
	}
	return c
}

// NoMetadata reports whether cloud-init found no metadata service: it gave
// up, or settled on DataSourceNone.
func (c Console) NoMetadata() bool {
	return c.GaveUp != "" || strings.HasPrefix(c.Datasource, "DataSourceNone")
}
