#!/usr/bin/python3
"""Run nova's own metadata API (Debian's python3-nova) as nova-api-metadata
would, over one instance held in memory instead of a database.

nova's code does the work: MetadataRequestHandler, the WSGI application of
nova-api-metadata, in nova.wsgi.Server, the eventlet server each of its
workers runs, after nova's own eventlet monkey-patching. It is configured as
behind neutron's metadata agent ([neutron] service_metadata_proxy = True), so
a request must carry X-Instance-ID, X-Tenant-ID, X-Forwarded-For and
X-Instance-ID-Signature (HMAC-SHA256 of the instance id under the shared
secret, hex), and with [api] local_metadata_per_cell so that nova's own
get_metadata_by_instance_id reads the instance with one
objects.Instance.get_by_uuid call, without the cell mapping lookup.

What cannot exist here is replaced, and only that:
  - objects.Instance.get_by_uuid (the database read) returns one instance
    built in memory with every field nova's InstanceMetadata reads, so
    nothing is lazy-loaded;
  - its block device mappings (another database read) are empty;
  - the security-group lookup (a call to neutron) answers "default".
nova then builds InstanceMetadata itself and keeps it in its oslo.cache
in-process cache for [api] metadata_cache_expiration (15 s by default): a
benchmark measures nova's best case, cache hits, with one rebuild every 15 s.

Usage:
  serve.py [--host 127.0.0.1] [--port 8775] [--secret S]
  serve.py --print-headers      the headers a client must send, one a line
"""
import nova.monkey_patch  # noqa: F401 -- first, as in nova-api-metadata

import argparse
import hashlib
import hmac
import sys

from oslo_log import log as logging
from oslo_serialization import base64

import nova.conf
from nova import config
from nova import exception
from nova import objects
from nova import wsgi
from nova.api.metadata import handler
from nova.network import model as network_model
from nova.network import security_group_api

CONF = nova.conf.CONF

# The instance every request asks for, and its project.
UUID = "6f1c0b2e-0000-4000-8000-000000001388"
PROJECT = "3a9d1c7e5b2f4e8a9c0d1e2f3a4b5c6d"
USER = "5e4d3c2b1a0f4e9d8c7b6a5f4e3d2c1b"
GUEST_IP = "10.90.19.136"
KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchKeyBenchKeyBenchKeyBenchKeyBenchKey00 "
       "bench@mdctl")


def signature(secret):
    return hmac.new(secret.encode(), UUID.encode(), hashlib.sha256).hexdigest()


def headers(secret):
    return [("X-Instance-ID", UUID), ("X-Tenant-ID", PROJECT),
            ("X-Instance-ID-Signature", signature(secret)), ("X-Forwarded-For", GUEST_IP)]


def instance(ctxt):
    """The instance row nova would read, with what it joins in."""
    flavor = objects.Flavor(
        id=1, flavorid="1", name="m1.small", memory_mb=2048, vcpus=1, root_gb=20,
        ephemeral_gb=0, swap=0, rxtx_factor=1.0, vcpu_weight=0, disabled=False,
        is_public=True, extra_specs={}, description=None)
    inst = objects.Instance(
        context=ctxt, id=5000, uuid=UUID, user_id=USER, project_id=PROJECT,
        hostname="bench-vm-5000", display_name="bench-vm-5000",
        host="compute-0", node="compute-0", launch_index=0, reservation_id="r-00001388",
        key_name="bench", key_data=KEY,
        user_data=base64.encode_as_text(b"#cloud-config\nhostname: bench-vm\n"),
        image_ref="0c5c3f6a-0000-4000-8000-000000000001", kernel_id="", ramdisk_id="",
        vcpus=1, memory_mb=2048, root_device_name="/dev/vda",
        default_ephemeral_device=None, default_swap_device=None,
        availability_zone="nova", metadata={"role": "bench"}, system_metadata={},
        device_metadata=None, numa_topology=None, launched_at=None, flavor=flavor,
        security_groups=objects.SecurityGroupList(objects=[]),
        ec2_ids=objects.EC2Ids(instance_id="i-00001388", ami_id="ami-00000001",
                               kernel_id=None, ramdisk_id=None),
        keypairs=objects.KeyPairList(objects=[
            objects.KeyPair(name="bench", type="ssh", public_key=KEY)]))
    inst.info_cache = objects.InstanceInfoCache(
        context=ctxt, instance_uuid=UUID, network_info=network_model.NetworkInfo([]))
    return inst


def without_database():
    def get_by_uuid(ctxt, uuid, expected_attrs=None, use_slave=False):
        if uuid != UUID:
            raise exception.InstanceNotFound(instance_id=uuid)
        return instance(ctxt)

    objects.Instance.get_by_uuid = staticmethod(get_by_uuid)
    objects.Instance.get_bdms = lambda self: objects.BlockDeviceMappingList(objects=[])
    security_group_api.get_instance_security_groups = (
        lambda ctxt, inst, detailed=False: [{"name": "default"}])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8775)
    ap.add_argument("--secret", default="bench-shared-secret", help="[neutron] metadata_proxy_shared_secret")
    ap.add_argument("--print-headers", action="store_true", help="print the headers a request must carry, and exit")
    args = ap.parse_args()
    if args.print_headers:
        for name, value in headers(args.secret):
            print("%s: %s" % (name, value))
        return 0

    config.parse_args(["nova-api-metadata"], default_config_files=[], configure_db=False, init_rpc=False)
    logging.setup(CONF, "nova")
    objects.register_all()
    CONF.set_override("service_metadata_proxy", True, group="neutron")
    CONF.set_override("metadata_proxy_shared_secret", args.secret, group="neutron")
    CONF.set_override("local_metadata_per_cell", True, group="api")
    without_database()

    server = wsgi.Server("metadata", handler.MetadataRequestHandler(), host=args.host, port=args.port)
    server.start()
    print("nova's metadata API on http://%s:%d/" % (args.host, server.port), file=sys.stderr, flush=True)
    server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
