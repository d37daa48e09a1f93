package testimage

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Timing is how cloud-init's local OpenStack search went, from its own
// log (cloud-init 22.4's lines): the search, the ephemeral DHCP inside it,
// and the crawl of 169.254.169.254.
type Timing struct {
	Search   time.Duration // "start: init-local/search-OpenStackLocal" to its last read of 169.254.169.254
	DHCP     time.Duration // "Performing a dhcp discovery" to the lease ("killing dhclient")
	Metadata time.Duration // first open of 169.254.169.254 to its last read: the crawl
	Reads    int           // answers read from 169.254.169.254 during the search
}

var logStamp = regexp.MustCompile(`^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - `)

const (
	searchStart = "start: init-local/search-OpenStackLocal"
	searchEnd   = "finish: init-local/search-OpenStackLocal"
	dhcpStart   = "Performing a dhcp discovery on "
	dhcpEnd     = "killing dhclient with pid="
	crawlOpen   = "open 'http://169.254.169.254"
	crawlRead   = "Read from http://169.254.169.254"
)

// OpenStackTiming reads cloud-init.log for the local OpenStack search.
func OpenStackTiming(log string) (Timing, error) {
	var search, dStart, dEnd, open, read time.Time
	var t Timing
	for _, line := range strings.Split(log, "\n") {
		m := logStamp.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, err := time.Parse("2006-01-02 15:04:05,000", m[1])
		if err != nil {
			continue
		}
		switch {
		case strings.Contains(line, searchStart):
			search = at
		case search.IsZero():
		case strings.Contains(line, searchEnd):
			if read.IsZero() {
				return t, fmt.Errorf("the OpenStack search read nothing from 169.254.169.254")
			}
			t.Search, t.Metadata = read.Sub(search), read.Sub(open)
			if !dStart.IsZero() && !dEnd.IsZero() {
				t.DHCP = dEnd.Sub(dStart)
			}
			return t, nil
		case strings.Contains(line, dhcpStart) && dStart.IsZero():
			dStart = at
		case strings.Contains(line, dhcpEnd) && dEnd.IsZero():
			dEnd = at
		case strings.Contains(line, crawlOpen) && open.IsZero():
			open = at
		case strings.Contains(line, crawlRead):
			read = at
			t.Reads++
		}
	}
	if search.IsZero() {
		return t, fmt.Errorf("no %q in cloud-init.log", searchStart)
	}
	return t, fmt.Errorf("no %q in cloud-init.log", searchEnd)
}
