package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mdctl/mdctl/store"
	"github.com/mdctl/mdctl/store/topology"
)

func newCmdInstance(f *factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "instance",
		Aliases: []string{"instances", "server"},
		Short:   "Create, list, show and delete instances",
		Example: `  mdctl instance create vm1 --project demo --network net1
  mdctl instance list
  mdctl instance show vm1 -o json
  mdctl instance show vm1 --libvirt   # attach a VM of your own by hand
  mdctl instance delete vm1`,
	}
	k := instanceKind()
	cmd.AddCommand(newCmdInstanceCreate(f, nil), newCmdRecordList(f, k, nil), newCmdInstanceShow(f, nil), newCmdRecordDelete(f, k, nil))
	return cmd
}

// instanceKind is how instance list, show and delete read, delete and
// print an instance: with its project, ports and networks.
func instanceKind() recordKind[store.Instance, store.InstanceView] {
	return recordKind[store.Instance, store.InstanceView]{
		name: "instance",
		list: func(ctx context.Context, st store.Reader) ([]store.Instance, error) { return st.ListInstances(ctx) },
		get: func(ctx context.Context, st store.Reader, ref string) (store.Instance, error) {
			return st.GetInstance(ctx, ref)
		},
		view: func(ctx context.Context, st store.Reader, in store.Instance) (store.InstanceView, error) {
			return st.InstanceView(ctx, in.ID)
		},
		remove: topology.DeleteInstance,
		ident:  func(in store.Instance) (string, string) { return in.Name, in.ID },
		table:  printInstanceTable,
		detail: printInstanceDetail,
		listHelp: recordHelp{
			Short: "List instances with their addresses",
			Example: `  mdctl instance list
  mdctl instance list -o json | jq -r '.[].instance.name'`,
		},
		showHelp: recordHelp{
			Short: "Show one instance with its project, ports and networks",
			Example: `  mdctl instance show vm1
  mdctl instance show vm1 -o yaml`,
		},
		deleteHelp: recordHelp{
			Short:   "Delete an instance with its ports and password",
			Example: `  mdctl instance delete vm1`,
		},
	}
}

type instanceCreateOptions struct {
	IO             *iostreams
	Store          func(context.Context) (store.Store, error)
	Spec           topology.InstanceSpec
	Networks       []string
	IP             string
	MAC            string
	UserDataFile   string
	Keys           []string
	Meta           []string
	SecurityGroups []string
	Output         string
}

func newCmdInstanceCreate(f *factory, runF func(context.Context, *instanceCreateOptions) error) *cobra.Command {
	opts := &instanceCreateOptions{IO: f.IO, Store: f.CreateStore}
	cmd := &cobra.Command{
		Use:   "create NAME --project PROJECT --network NETWORK",
		Short: "Create an instance with a port on each of its networks",
		Long: `Create an instance as nova would: a UUID, a hostname from its name, and one
port (MAC fa:16:3e:…, the given or the next free address) per network.
The project is created when missing.`,
		Example: `  mdctl instance create vm1 --project demo --network net1
  mdctl instance create vm2 --project demo --network net1 --ip 10.90.1.20 \
      --user-data-file cloud-init.yaml --key default="ssh-ed25519 AAAA… me" --meta role=web
  mdctl instance create vm3 --project demo --network net1 --network net2 --config-drive`,
		Args: exactArgs(1, "one instance NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Spec.Name = args[0]
			if err := checkOutput(opts.Output); err != nil {
				return err
			}
			if err := opts.build(); err != nil {
				return err
			}
			return runOrTest(cmd, opts, runF, instanceCreateRun)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Spec.Project, "project", "", "project name (created when missing)")
	fl.StringArrayVar(&opts.Networks, "network", nil, "network name or ID (repeat for several NICs)")
	fl.StringVar(&opts.IP, "ip", "", "fixed IP on the first network (default: the next free address)")
	fl.StringVar(&opts.Spec.Hostname, "hostname", "", "hostname (default: the name, sanitized as nova does)")
	fl.StringVar(&opts.UserDataFile, "user-data-file", "", "file served as user_data")
	fl.StringArrayVar(&opts.Keys, "key", nil, "public key as NAME=KEY (repeatable; the first is EC2's key)")
	fl.StringArrayVar(&opts.Meta, "meta", nil, "metadata item KEY=VALUE (repeatable; kept in this order, as nova does)")
	fl.StringArrayVar(&opts.SecurityGroups, "security-group", nil, "security group of every port (repeatable; default: default)")
	fl.StringVar(&opts.Spec.AvailabilityZone, "az", "", "availability zone (default nova)")
	fl.StringVar(&opts.Spec.Flavor, "flavor", "", "flavor name (default m1.small)")
	fl.IntVar(&opts.Spec.LaunchIndex, "launch-index", 0, "nova's ami-launch-index")
	fl.StringVar(&opts.Spec.AdminPass, "admin-pass", "", "admin password (config drive only)")
	fl.StringVar(&opts.Spec.MetadataTokens, "metadata-tokens", "", "optional or required: this instance's session tokens (AWS IMDSv2), overriding the metadata_tokens setting")
	fl.BoolVar(&opts.Spec.ConfigDrive, "config-drive", false, "build a config drive for this instance")
	fl.StringVar(&opts.Spec.Host, "host", "", "bind the ports to a VM on this host outside the lab (binding_host_id): the lab never plays or touches them")
	fl.StringVar(&opts.MAC, "mac", "", "MAC of the first port (default: a new fa:16:3e:… one); give an existing VM's NIC")
	_ = cmd.MarkFlagRequired("project")
	_ = cmd.MarkFlagRequired("network")
	_ = cmd.RegisterFlagCompletionFunc("network", completeNamesFlag(f, networkKind().names))
	_ = cmd.MarkFlagFilename("user-data-file")
	addOutputFlag(cmd, &opts.Output)
	return cmd
}

// build turns the flags into a spec; bad flag values are usage errors.
func (o *instanceCreateOptions) build() error {
	o.Spec.Ports = nil
	for i, n := range o.Networks {
		p := topology.PortSpec{Network: n}
		if i == 0 {
			p.IP, p.MAC = o.IP, o.MAC
		}
		o.Spec.Ports = append(o.Spec.Ports, p)
	}
	o.Spec.Keys = nil
	for _, kv := range o.Keys {
		name, data, ok := strings.Cut(kv, "=")
		if !ok || name == "" || data == "" {
			return usageErrorf("--key %q: use NAME=KEY, e.g. --key default=\"ssh-ed25519 AAAA… me\"", kv)
		}
		o.Spec.Keys = append(o.Spec.Keys, topology.KeySpec{Name: name, Type: "ssh", Data: data})
	}
	o.Spec.Meta = store.Meta{}
	for _, kv := range o.Meta {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usageErrorf("--meta %q: use KEY=VALUE", kv)
		}
		o.Spec.Meta.Set(k, v)
	}
	o.Spec.SecurityGroups = nil // the default group
	if len(o.SecurityGroups) > 0 {
		o.Spec.SecurityGroups = o.SecurityGroups
	}
	if o.UserDataFile != "" {
		if fi, err := os.Stat(o.UserDataFile); err == nil && !fi.Mode().IsRegular() {
			return usageErrorf("--user-data-file: %s is not a regular file", o.UserDataFile)
		}
		b, err := os.ReadFile(o.UserDataFile)
		if err != nil {
			return fmt.Errorf("--user-data-file: %w", err)
		}
		o.Spec.UserData = b
	}
	return nil
}

func instanceCreateRun(ctx context.Context, opts *instanceCreateOptions) error {
	return withStoreFn(ctx, opts.Store, func(st store.Store) error {
		in, _, err := topology.CreateInstance(ctx, st, opts.Spec)
		if err != nil {
			return err
		}
		return instanceKind().show(ctx, st, opts.IO, opts.Output, in)
	})
}

func printInstanceTable(io *iostreams, views []store.InstanceView) error {
	t := newTable(io.Out, "NAME", "ID", "PROJECT", "ADDRESSES", "AZ", "CONFIG DRIVE")
	for _, v := range views {
		t.row(v.Instance.Name, v.Instance.ID, v.Project.Name, addresses(v), v.Instance.AvailabilityZone, yesNo(v.Instance.ConfigDrive))
	}
	return t.flush()
}

func printInstanceDetail(io *iostreams, v store.InstanceView) error {
	in := v.Instance
	t := newTable(io.Out, "FIELD", "VALUE")
	t.row("name", in.Name)
	t.row("id", in.ID)
	t.row("ec2 id", fmt.Sprintf("i-%08x", in.EC2ID))
	t.row("hostname", in.Hostname)
	t.row("project", fmt.Sprintf("%s (%s)", v.Project.Name, v.Project.ID))
	t.row("availability zone", in.AvailabilityZone)
	t.row("flavor", in.Flavor)
	t.row("launch index", fmt.Sprint(in.LaunchIndex))
	t.row("config drive", yesNo(in.ConfigDrive))
	if in.MetadataTokens != "" {
		t.row("metadata tokens", in.MetadataTokens+" (this instance's; the setting is overridden)")
	}
	t.row("user data", fmt.Sprintf("%d bytes", len(in.UserData)))
	keys := make([]string, 0, len(in.Keys))
	for _, k := range in.Keys {
		keys = append(keys, k.Name+" ("+k.Type+")")
	}
	t.row("keys", strings.Join(keys, ", "))
	meta := make([]string, 0, len(in.Meta))
	for _, it := range in.Meta {
		meta = append(meta, it.Key+"="+it.Value)
	}
	t.row("meta", strings.Join(meta, ", "))
	for i, p := range v.Ports {
		bound := ""
		if p.Port.BindingHostID != "" {
			bound = " (bound to host " + p.Port.BindingHostID + ", outside the lab)"
		}
		t.row(fmt.Sprintf("port %d", i), fmt.Sprintf("%s %s on %s: %s [%s]%s", p.Port.ID, p.Port.MACAddress, p.Network.Name,
			fixedIPs(p.Port), strings.Join(p.Port.SecurityGroups, ", "), bound))
	}
	return t.flush()
}

func addresses(v store.InstanceView) string {
	var out []string
	for _, p := range v.Ports {
		out = append(out, p.Network.Name+"="+fixedIPs(p.Port))
	}
	return strings.Join(out, "; ")
}

func fixedIPs(p store.Port) string {
	ips := make([]string, 0, len(p.FixedIPs))
	for _, f := range p.FixedIPs {
		ips = append(ips, f.IPAddress)
	}
	return strings.Join(ips, ",")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
