package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdctl/mdctl/internal/testworld"
	"github.com/mdctl/mdctl/server/dataplane"
	"github.com/mdctl/mdctl/store"
)

// Two tenants whose guests share 10.90.7.10 behind two routers, and a
// second alpha guest at 10.90.7.11 for address forgeries to aim at. Rate
// limits are off: every try must reach the chain, not a 429.
const forgeryTopo = `
settings:
  metadata_proxy_shared_secret: s3cret
  metadata_rate_limiting.rate_limit_enabled: "false"
routers:
  - {name: ra, project: alpha}
  - {name: rb, project: beta}
networks:
  - {name: neta, project: alpha, cidr: 10.90.7.0/24, router: ra}
  - {name: netb, project: beta, cidr: 10.90.7.0/24, router: rb}
instances:
  - {name: alpha-one, project: alpha, network: neta, ip: 10.90.7.10, user_data: "SECRET-alpha-one-5c1e"}
  - {name: alpha-two, project: alpha, network: neta, ip: 10.90.7.11, user_data: "SECRET-alpha-two-77a0"}
  - {name: beta-one, project: beta, network: netb, ip: 10.90.7.10, user_data: "SECRET-beta-one-e3b9"}
`

// forgeryTries per attacking guest.
const forgeryTries = 1500

// victimFacts is what a forgery may name: another instance, its project,
// its network and router, and a signature made with the real secret (the
// worst case: a guest that knows the shared secret).
type victimFacts struct {
	id, project, ip, network, router, sig string
}

// forms are the identity forgeries of issue 14, each a function of the
// victim giving header lines (or, for whole-request forms, the request).
var headerForms = []func(v victimFacts) []string{
	func(v victimFacts) []string { return []string{"X-Instance-ID: " + v.id} },
	func(v victimFacts) []string { return []string{"X-Tenant-ID: " + v.project} },
	func(v victimFacts) []string {
		return []string{"X-Instance-ID: " + v.id, "X-Tenant-ID: " + v.project, "X-Instance-ID-Signature: " + v.sig}
	},
	func(v victimFacts) []string {
		return []string{"x-iNsTaNcE-iD: " + v.id, "X-INSTANCE-ID-SIGNATURE: " + v.sig}
	},
	func(v victimFacts) []string {
		return []string{"X_Instance_ID: " + v.id, "X_Instance_ID_Signature: " + v.sig}
	},
	func(v victimFacts) []string { return []string{"X-Instance-ID: " + v.id, "X-Instance-ID: " + v.id} },
	func(v victimFacts) []string { return []string{"X-Forwarded-For: " + v.ip} },
	func(v victimFacts) []string { return []string{"X-Forwarded-For: " + v.ip + ", 10.90.7.10"} },
	func(v victimFacts) []string { return []string{"X-Forwarded-For: 10.90.7.10, " + v.ip} },
	func(v victimFacts) []string { return []string{"X-Forwarded-For: ::ffff:" + v.ip} },
	func(v victimFacts) []string { return []string{"X-Forwarded-For: [::ffff:" + v.ip + "]"} },
	func(v victimFacts) []string { return []string{"X-Forwarded-For: " + v.ip, "X-Forwarded-For: " + v.ip} },
	func(v victimFacts) []string { return []string{"x-forwarded-for:" + v.ip + "\t"} },
	func(v victimFacts) []string { return []string{"X-Real-IP: " + v.ip} },
	func(v victimFacts) []string { return []string{"Forwarded: for=" + v.ip} },
	func(v victimFacts) []string { return []string{`Forwarded: for="[::ffff:` + v.ip + `]"`} },
	func(v victimFacts) []string { return []string{"X-Neutron-Router-ID: " + v.router} },
	func(v victimFacts) []string { return []string{"X-Neutron-Network-ID: " + v.network} },
	func(v victimFacts) []string {
		return []string{"X-Neutron-Router-ID: " + v.router, "X-Neutron-Network-ID: " + v.network}
	},
	func(v victimFacts) []string {
		return []string{"x-neutron-router-id: " + v.router, "X-NEUTRON-ROUTER-ID: " + v.router}
	},
	func(v victimFacts) []string { return []string{"X-OVN-Network-ID: " + v.network} },
	func(v victimFacts) []string { return []string{"X-Metadata-Provider: " + v.network} },
	func(v victimFacts) []string {
		return []string{"X-Metadata-Provider: " + v.network, "X-Metadata-Provider-Signature: " + v.sig}
	},
	func(v victimFacts) []string { return []string{"Connection: X-Forwarded-For, X-Neutron-Router-ID"} },
	func(v victimFacts) []string { return []string{"X-Hop: a", " X-Instance-ID: " + v.id} }, // obs-fold
}

var forgeryPaths = []string{
	"/openstack/latest/meta_data.json", "/openstack/latest/user_data", "/openstack/latest/password",
	"/latest/meta-data/instance-id", "/latest/user-data", "/openstack/2013-10-17/meta_data.json",
}

// forgeryRequest builds one try: a request line of some form, a few
// forged header lines, and sometimes a smuggling frame around a second
// forged request.
func forgeryRequest(r *rand.Rand, v victimFacts) string {
	path := forgeryPaths[r.IntN(len(forgeryPaths))]
	var hs []string
	for range 1 + r.IntN(3) {
		hs = append(hs, headerForms[r.IntN(len(headerForms))](v)...)
	}
	head := func(line string, extra ...string) string {
		return line + "\r\n" + strings.Join(append(extra, hs...), "\r\n") + "\r\n\r\n"
	}
	host := "Host: " + dataplane.MetadataIPv4
	switch r.IntN(8) {
	case 0: // absolute form naming the victim
		return head("GET http://"+v.ip+path+" HTTP/1.1", host)
	case 1: // HTTP/1.0, no Host
		return head("GET " + path + " HTTP/1.0")
	case 2: // CL.TE: the body's tail is a second, forged request
		inner := head("GET "+path+" HTTP/1.1", host)
		return head("POST /openstack/latest/password HTTP/1.1", host, "Content-Length: "+fmt.Sprint(5+len(inner)), "Transfer-Encoding: chunked") + "0\r\n\r\n" + inner
	case 3: // TE.CL
		inner := head("GET "+path+" HTTP/1.1", host)
		chunk := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(inner), inner)
		return head("POST /openstack/latest/password HTTP/1.1", host, "Transfer-Encoding: chunked", "Content-Length: 4") + chunk
	case 4: // obfuscated TE
		inner := head("GET "+path+" HTTP/1.1", host)
		return head("POST /openstack/latest/password HTTP/1.1", host, "Transfer-Encoding: xchunked", "Content-Length: 0") + inner
	case 5: // pipelined, LF-only second request
		return head("GET "+path+" HTTP/1.1", host) + strings.ReplaceAll(head("GET "+path+" HTTP/1.1", host), "\r\n", "\n")
	default:
		return head("GET "+path+" HTTP/1.1", host)
	}
}

// instanceMarks are the strings whose presence in an answer shows whose
// data it is: the uuid, EC2 id, name, user data and posted password.
func instanceMarks(in store.Instance) []string {
	return []string{in.ID, fmt.Sprintf("i-%08x", in.EC2ID), `"` + in.Name + `"`, string(in.UserData), forgeryPassword(in)}
}

// forgeryPassword is the password each guest has before the tries. With
// one set, no try can post its own: a body the attacker chose (a chunked
// POST's, which may quote the victim's id) would otherwise read back as
// the attacker's own password and look like the victim's data.
func forgeryPassword(in store.Instance) string { return "pw-of-" + in.Name + "-" + in.ID[:8] }

// TestForgedIdentityNeverLeaks sends thousands of forged requests from
// each tenant's guest through the real chain and checks that no answer
// carries any other instance's data, while many carry the guest's own.
func TestForgedIdentityNeverLeaks(t *testing.T) {
	w := testworld.New(t, forgeryTopo)
	w.StartServe(testworld.ServeOptions{})
	w.LabUp()
	names := []string{"alpha-one", "alpha-two", "beta-one"}
	ins := map[string]store.Instance{}
	for _, n := range names {
		ins[n] = w.Instance(n)
		if err := w.Store.SetPassword(context.Background(), ins[n].ID, forgeryPassword(ins[n])); err != nil {
			t.Fatal(err)
		}
		waitServing(t, w.GuestNS(n))
	}
	sign := func(id string) string {
		m := hmac.New(sha256.New, []byte("s3cret"))
		m.Write([]byte(id))
		return hex.EncodeToString(m.Sum(nil))
	}
	facts := func(n string) victimFacts {
		in := ins[n]
		nw, rt := "neta", "ra"
		if strings.HasPrefix(n, "beta") {
			nw, rt = "netb", "rb"
		}
		ip := "10.90.7.10"
		if n == "alpha-two" {
			ip = "10.90.7.11"
		}
		return victimFacts{id: in.ID, project: in.ProjectID, ip: ip, network: w.Network(nw).ID, router: w.Router(rt).ID, sig: sign(in.ID)}
	}
	// alpha-one and beta-one share an address behind different routers:
	// each aims at the other and at alpha-two.
	for _, attacker := range []string{"alpha-one", "beta-one"} {
		t.Run(attacker, func(t *testing.T) {
			var victims []victimFacts
			var foreign []string
			for _, n := range names {
				if n != attacker {
					victims = append(victims, facts(n))
					foreign = append(foreign, instanceMarks(ins[n])...)
				}
			}
			res := forge(t, w.GuestNS(attacker), victims, foreign, instanceMarks(ins[attacker]), uint64(len(attacker)))
			t.Logf("%s: %d tries, answers by status %v, %d with its own data, %d leaks", attacker, forgeryTries, res.statuses, res.own, len(res.leaks))
			for i, l := range res.leaks {
				if i == 5 {
					break
				}
				t.Errorf("leak: request %q\nanswer %.400q", l[0], l[1])
			}
			if len(res.leaks) > 0 {
				t.Fatalf("%d of %d tries leaked another instance's data", len(res.leaks), forgeryTries)
			}
			// The check means something only if the chain answered.
			if res.own < forgeryTries/4 {
				t.Fatalf("only %d of %d tries got the guest's own data: the tries did not reach the chain", res.own, forgeryTries)
			}
		})
	}
}

type forgeryResult struct {
	statuses map[string]int
	own      int
	leaks    [][2]string
}

// forge runs the tries from inside ns over a few parallel workers; each
// try is one connection, written whole, half-closed, read to the end.
func forge(t *testing.T, ns string, victims []victimFacts, foreign, own []string, seed uint64) forgeryResult {
	t.Helper()
	res := forgeryResult{statuses: map[string]int{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	const workers = 8
	errc := make(chan error, workers)
	for wk := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(wk), seed))
			errc <- dataplane.Do(ns, func() error {
				for i := wk; i < forgeryTries; i += workers {
					req := forgeryRequest(r, victims[r.IntN(len(victims))])
					answer, err := exchangeRaw(dataplane.MetadataIPv4+":80", req)
					if err != nil {
						return fmt.Errorf("try %d: %w", i, err)
					}
					mu.Lock()
					for _, st := range statusLines(answer) {
						res.statuses[st]++
					}
					if slices.ContainsFunc(own, func(m string) bool { return strings.Contains(answer, m) }) {
						res.own++
					}
					for _, m := range foreign {
						if strings.Contains(answer, m) {
							res.leaks = append(res.leaks, [2]string{req, answer})
							break
						}
					}
					mu.Unlock()
				}
				return nil
			})
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	return res
}

// exchangeRaw writes req on a new connection, half-closes it and returns
// everything the proxy answered before closing.
func exchangeRaw(addr, req string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		return "", err
	}
	c.(*net.TCPConn).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil && len(b) == 0 {
		return "", err
	}
	return string(b), nil
}

// statusLines are the status codes of the answers in raw ("200", …).
func statusLines(raw string) []string {
	var out []string
	for _, line := range strings.Split(raw, "\r\n") {
		if strings.HasPrefix(line, "HTTP/1.") && len(line) >= 12 {
			out = append(out, line[9:12])
		}
	}
	sort.Strings(out)
	return out
}
