// Package vendordata asks nova's DynamicJSON vendordata services about an
// instance, as nova's vendordata_dynamic.py does, for vendor_data2.json on
// the API and on config drives alike. It owns those HTTP calls; it must not
// build metadata (server/metadata does).
package vendordata

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mdctl/mdctl/server/metadata"
	"github.com/mdctl/mdctl/store"
)

// Fetcher POSTs to the vendordata_dynamic_targets in force. The zero value
// is ready: each call gets a client with nova's connect and read timeouts.
type Fetcher struct {
	// Client, when set, is used instead (tests, custom TLS).
	Client *http.Client
}

// dynamicRequest is the body nova's DynamicVendorData POSTs.
type dynamicRequest struct {
	ProjectID  string     `json:"project-id"`
	InstanceID string     `json:"instance-id"`
	ImageID    string     `json:"image-id"`
	UserData   *string    `json:"user-data"`
	Hostname   string     `json:"hostname"`
	Metadata   store.Meta `json:"metadata"` // nil is {}, keys in nova's order
	BootRoles  string     `json:"boot-roles"`
}

// Wanted reports whether the settings name DynamicJSON targets to ask.
func Wanted(cfg store.Config) bool {
	return slices.Contains(cfg.VendordataProviders, metadata.DynamicJSON) && len(cfg.VendordataDynamicTargets) > 0
}

// Dynamic asks every vendordata_dynamic_targets service about an
// instance, as nova's DynamicVendorData.get (vendordata_dynamic.py): in the
// targets' order, a target without "@" skipped, and a name already answered
// skipped (the first target of a name wins), each with nova's warning. A
// failing target gives {} and nova's warning, or an error when
// vendordata_dynamic_failure_fatal is set.
func (f Fetcher) Dynamic(ctx context.Context, log *slog.Logger, cfg store.Config, inst store.Instance) ([]metadata.VendorAnswer, error) {
	if !Wanted(cfg) {
		return nil, nil
	}
	req := dynamicRequest{
		ProjectID:  inst.ProjectID,
		InstanceID: inst.ID,
		Hostname:   inst.Hostname,
		Metadata:   inst.Meta,
	}
	if inst.UserData != nil {
		ud := base64.StdEncoding.EncodeToString(inst.UserData)
		req.UserData = &ud
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode vendordata request: %w", err)
	}
	out := make([]metadata.VendorAnswer, 0, len(cfg.VendordataDynamicTargets))
	for _, target := range cfg.VendordataDynamicTargets {
		name, url, ok := strings.Cut(target, "@")
		if !ok {
			log.Warn(fmt.Sprintf("Vendordata target %s lacks a name. Skipping", target), "target", target)
			continue
		}
		if slices.ContainsFunc(out, func(a metadata.VendorAnswer) bool { return a.Name == name }) {
			log.Warn(fmt.Sprintf("Vendordata already contains an entry named %s. Skipping", target), "target", target)
			continue
		}
		data, err := f.post(ctx, cfg, url, body)
		if err != nil {
			log.Warn(fmt.Sprintf("Error from dynamic vendordata service %s at %s: %s", name, url, err),
				"service", name, "url", url)
			if cfg.VendordataFailureFatal {
				return nil, fmt.Errorf("dynamic vendordata %s: %w", name, err)
			}
			data = json.RawMessage("{}")
		}
		out = append(out, metadata.VendorAnswer{Name: name, Body: data})
	}
	return out, nil
}

func (f Fetcher) post(ctx context.Context, cfg store.Config, url string, body []byte) (json.RawMessage, error) {
	connect := time.Duration(cfg.VendordataConnectTimeout) * time.Second
	read := time.Duration(cfg.VendordataReadTimeout) * time.Second
	ctx, cancel := context.WithTimeout(ctx, connect+read)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "openstack-nova-vendordata")
	resp, err := f.client(connect, read).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		return nil, fmt.Errorf("%s", resp.Status)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return json.RawMessage("{}"), nil
	}
	if !json.Valid(data) {
		return nil, errors.New("response is not JSON")
	}
	return json.RawMessage(data), nil
}

// client is the configured client, or one with nova's connect and read
// timeouts.
func (f Fetcher) client(connect, read time.Duration) *http.Client {
	if f.Client != nil {
		return f.Client
	}
	return &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: connect}).DialContext,
		ResponseHeaderTimeout: read,
		DisableKeepAlives:     true, // a client per build: leave no idle connections behind
	}}
}
