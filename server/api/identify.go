package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mdctl/mdctl/server/metadata"
	"github.com/mdctl/mdctl/server/vendordata"
	"github.com/mdctl/mdctl/store"
)

// header returns a request header as WSGI shows it to nova: repeated
// headers joined with ",". ok is false when it is absent.
func header(r *http.Request, key string) (string, bool) {
	v, ok := r.Header[key]
	switch {
	case !ok:
		return "", false
	case len(v) == 1:
		return v[0], true
	}
	return strings.Join(v, ","), true
}

// identifyByHeaders is nova's service_metadata_proxy path: the LB path when
// X-Metadata-Provider is set, else the agent's signed X-Instance-ID. It
// returns nil after answering the request itself.
func (s *Server) identifyByHeaders(w http.ResponseWriter, r *http.Request, rid string, snap store.Snapshot, now time.Time) *entry {
	if v, _ := header(r, "X-Metadata-Provider"); v != "" {
		s.identifyByProvider(w, r, rid, snap)
		return nil
	}
	id, hasID := header(r, "X-Instance-Id")
	tenant, hasTenant := header(r, "X-Tenant-Id")
	sig, hasSig := header(r, "X-Instance-Id-Signature")
	remote, _ := header(r, "X-Forwarded-For")
	var missing string
	switch {
	case !hasID:
		missing = "X-Instance-ID header is missing from request."
	case !hasSig:
		missing = "X-Instance-ID-Signature header is missing from request."
	case !hasTenant:
		missing = "X-Tenant-ID header is missing from request."
	}
	if missing != "" {
		writeError(w, r, errorPage{http.StatusBadRequest, missing})
		return nil
	}

	ttl := time.Duration(snap.Config.CacheExpirationSeconds) * time.Second
	var e *entry
	if ttl > 0 {
		e = s.byID.get(id, snap.Generation, now)
	}
	var valid bool
	if e != nil {
		valid = sig != "" && constantTimeEqual(e.signature, sig)
	} else {
		valid = s.signers.get(snap.Config.SharedSecret).verify(id, sig)
	}
	if !valid {
		if id != "" {
			// Never log the expected value: it is a valid credential.
			s.logger(rid).Warn(fmt.Sprintf("X-Instance-ID-Signature: %s does not match the expected signature for id: %s. Request From: %s",
				sig, id, remote), "instance", id, "remote", remote)
		}
		s.badSignatures.Inc()
		writeError(w, r, errorPage{http.StatusForbidden, explainBadSignature})
		return nil
	}
	if e == nil {
		e = s.load(w, r, rid, snap, now, id, remote)
		if e == nil {
			return nil
		}
		if ttl > 0 {
			s.byID.put(id, e)
		}
	}
	if e.projectID != tenant {
		s.logger(rid).Warn(fmt.Sprintf("Tenant_id %s does not match tenant_id of instance %s.", tenant, id),
			"tenant", tenant, "instance", id)
		writeError(w, r, errorPage{http.StatusNotFound, explainNotFound})
		return nil
	}
	return e
}

// load reads and builds an instance's metadata for a verified id.
func (s *Server) load(w http.ResponseWriter, r *http.Request, rid string, snap store.Snapshot, now time.Time, id, remote string) *entry {
	log := s.logger(rid)
	view, err := s.store.InstanceView(r.Context(), id)
	// The store also resolves names; only the exact id a signature
	// covers may name an instance.
	if errors.Is(err, store.ErrNotFound) || (err == nil && view.Instance.ID != id) {
		log.Error(fmt.Sprintf("Failed to get metadata for instance id: %s", id), "instance", id)
		writeError(w, r, errorPage{http.StatusNotFound, explainNotFound})
		return nil
	}
	if err == nil {
		var e *entry
		e, err = s.newEntry(r.Context(), snap, now, view, remote)
		if err == nil {
			return e
		}
	}
	log.Log(r.Context(), store.LogLevel(err), fmt.Sprintf("Failed to get metadata for instance id: %s", id), "instance", id, "error", err)
	writeError(w, r, errorPage{http.StatusInternalServerError, explainUnknown})
	return nil
}

// identifyByProvider is nova's LB path (X-Metadata-Provider,
// handler.py _handle_instance_id_request_from_lb). mdctl has no subnets
// with advanced service providers, so once the headers and the signature
// pass, nova's list_subnets(advanced_service_providers=[id]) in
// _get_instance_id_from_lb finds none: 400 with its message, logged at
// error level.
func (s *Server) identifyByProvider(w http.ResponseWriter, r *http.Request, rid string, snap store.Snapshot) {
	remote, ok := header(r, "X-Forwarded-For")
	if !ok {
		writeError(w, r, errorPage{http.StatusBadRequest, "X-Forwarded-For is missing from request."})
		return
	}
	provider, _ := header(r, "X-Metadata-Provider")
	addr, _, _ := strings.Cut(remote, ",")
	if snap.Config.SharedSecret != "" {
		sig, _ := header(r, "X-Metadata-Provider-Signature")
		if !s.signers.get(snap.Config.SharedSecret).verify(provider, sig) {
			s.logger(rid).Warn(fmt.Sprintf("X-Instance-ID-Signature: %s does not match the expected signature for id: %s. Request From: %s",
				sig, provider, addr), "provider", provider, "remote", addr)
			s.badSignatures.Inc()
			writeError(w, r, errorPage{http.StatusForbidden, explainBadSignature})
			return
		}
	}
	msg := "Could not find any subnets for provider " + provider
	s.logger(rid).Error(msg, "provider", provider, "remote", addr)
	writeError(w, r, errorPage{http.StatusBadRequest, msg})
}

// identifyByPeer is nova's path with service_metadata_proxy off: the peer
// address names the instance through its compute port.
func (s *Server) identifyByPeer(w http.ResponseWriter, r *http.Request, rid string, snap store.Snapshot, now time.Time) *entry {
	ip := peerIP(r.RemoteAddr)
	ttl := time.Duration(snap.Config.CacheExpirationSeconds) * time.Second
	if ttl > 0 {
		if e := s.byIP.get(ip, snap.Generation, now); e != nil {
			return e
		}
	}
	log := s.logger(rid)
	view, err := s.viewByAddress(r.Context(), ip)
	if errors.Is(err, store.ErrNotFound) {
		log.Error(fmt.Sprintf("Failed to get metadata for IP %s: no metadata", ip), "remote", ip)
		writeError(w, r, errorPage{http.StatusNotFound, explainNotFound})
		return nil
	}
	var e *entry
	if err == nil {
		e, err = s.newEntry(r.Context(), snap, now, view, ip)
	}
	if err != nil {
		log.Log(r.Context(), store.LogLevel(err), fmt.Sprintf("Failed to get metadata for IP %s", ip), "remote", ip, "error", err)
		writeError(w, r, errorPage{http.StatusInternalServerError, explainUnknown})
		return nil
	}
	if ttl > 0 {
		s.byIP.put(ip, e)
	}
	return e
}

// errManyPorts is nova's FixedIpAssociatedWithMultipleInstances.
var errManyPorts = errors.New("more than one instance has this fixed IP")

// viewByAddress is nova's get_fixed_ip_by_address then the instance: no
// compute port with the address (or no instance behind it) is
// ErrNotFound, more than one is errManyPorts.
func (s *Server) viewByAddress(ctx context.Context, ip string) (store.InstanceView, error) {
	if ip == "" {
		return store.InstanceView{}, errors.New("no remote address")
	}
	ports, err := s.store.ListPorts(ctx, store.PortFilter{IPAddresses: []string{ip}})
	if err != nil {
		return store.InstanceView{}, fmt.Errorf("list ports for %s: %w", ip, err)
	}
	ports = slices.DeleteFunc(ports, func(p store.Port) bool { return !strings.HasPrefix(p.DeviceOwner, "compute:") })
	switch len(ports) {
	case 0:
		return store.InstanceView{}, fmt.Errorf("fixed ip %s: %w", ip, store.ErrNotFound)
	case 1:
	default:
		return store.InstanceView{}, fmt.Errorf("fixed ip %s: %w", ip, errManyPorts)
	}
	view, err := s.store.InstanceView(ctx, ports[0].DeviceID)
	if err != nil {
		return store.InstanceView{}, fmt.Errorf("instance %s of port %s: %w", ports[0].DeviceID, ports[0].ID, err)
	}
	return view, nil
}

// newEntry builds an instance's metadata with the settings in force.
func (s *Server) newEntry(ctx context.Context, snap store.Snapshot, now time.Time, view store.InstanceView, remote string) (*entry, error) {
	cfg := snap.Config
	log := s.log.With("instance", view.Instance.ID)
	o, err := metadata.OptionsFromConfig(cfg, os.ReadFile)
	if vf := (*metadata.VendordataFileError)(nil); errors.As(err, &vf) {
		log.Warn(vf.Warning)
	}
	if err != nil {
		return nil, err
	}
	// nova asks the DynamicJSON targets on each vendor_data2.json request,
	// and for no other document (base.py _vendor_data2).
	o.Now, o.RemoteAddr, o.DynamicPerRequest = now, remote, vendordata.Wanted(cfg)
	md, err := metadata.Build(view, o)
	if err != nil {
		return nil, fmt.Errorf("build metadata of %s: %w", view.Instance.ID, err)
	}
	return &entry{
		md:         md,
		inst:       view.Instance,
		instanceID: view.Instance.ID,
		projectID:  view.Instance.ProjectID,
		tokens:     view.Instance.MetadataTokens,
		signature:  s.signers.get(cfg.SharedSecret).expected(view.Instance.ID),
		gen:        snap.Generation,
		expires:    now.Add(time.Duration(cfg.CacheExpirationSeconds) * time.Second),
	}, nil
}

// peerIP is the address of r.RemoteAddr without port or zone.
func peerIP(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	host, _, _ = strings.Cut(host, "%")
	return host
}

// constantTimeEqual compares a secret with a guess; only the length leaks,
// as with hmac.Equal.
func constantTimeEqual(secret, guess string) bool {
	if len(secret) != len(guess) {
		return false
	}
	var v byte
	for i := 0; i < len(secret); i++ {
		v |= secret[i] ^ guess[i]
	}
	return subtle.ConstantTimeByteEq(v, 0) == 1
}
