package vmspec

import (
	"path/filepath"
	"regexp"
	"strings"
)

// ConsolePath is where the lab keeps a VM's serial console (the launcher
// writes it, `lab console` and trace read it):
// <data-dir>/lab-vms/<instance uuid>/console.log.
func ConsolePath(dataDir, instanceID string) string {
	return filepath.Join(dataDir, "lab-vms", instanceID, "console.log")
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
	// Lines are the lines above, in console order: the evidence to show.
	Lines []string
}

var (
	stageRE    = regexp.MustCompile(`Cloud-init v\. \S+ running '([^']+)'`)
	finishedRE = regexp.MustCompile(`Cloud-init v\. \S+ finished at .*Datasource (.+?)\.\s+Up `)
	callingRE  = regexp.MustCompile(`Calling '(http://169\.254\.169\.254[^']*|http://\[fe80::a9fe:a9fe[^']*)' failed \[[^\]]*\]`)
	gaveUpRE   = regexp.MustCompile(`Giving up on (OpenStack )?md from .*|No active metadata service found`)
)

// maxFailures bounds Console.Failures (a VM retries for two minutes).
const maxFailures = 3

// ParseConsole reads cloud-init's lines out of a console capture. A later
// boot's lines (a stage banner after a final message) start it over.
func ParseConsole(text string) Console {
	var c Console
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		switch {
		case stageRE.MatchString(line):
			stage := stageRE.FindStringSubmatch(line)[1]
			if c.Finished || stage == "init-local" {
				c = Console{}
			}
			c.Stages = append(c.Stages, stage)
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
