package sdlisten

import (
	"os"
	"strconv"
	"testing"
)

// TestListenersNotOurs: without systemd's variables, or with another
// process's, there is nothing to take (and the variables are gone, so no
// child takes them either); a bad count is an error. The sockets
// themselves are e2e's TestServeTakesSystemdSockets's.
func TestListenersNotOurs(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name    string
		env     map[string]string
		wantErr bool
	}{
		{"none", nil, false},
		{"another process's", map[string]string{envPID: "1", envFDs: "2", envNames: "api:agent"}, false},
		{"no count", map[string]string{envPID: self, envFDs: "two"}, true},
		{"zero", map[string]string{envPID: self, envFDs: "0"}, false},
	} {
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		lns, err := Listeners(os.Getenv)
		if (err != nil) != tc.wantErr || len(lns) != 0 {
			t.Errorf("%s: %v, %v; want no listeners, error %v", tc.name, lns, err, tc.wantErr)
		}
		for _, k := range []string{envPID, envFDs, envNames} {
			if _, set := os.LookupEnv(k); set && len(tc.env) > 0 {
				t.Errorf("%s: %s still set", tc.name, k)
			}
		}
	}
}
