package testworld

// RoutedTopo is the routed world diag's and e2e's tests start from: router
// r1 with net1 (10.90.1.0/24) and two guests, vm1 (10.90.1.5, with user
// data, a key and meta) and vm2 (10.90.1.6, bare).
const RoutedTopo = `
settings:
  metadata_proxy_shared_secret: s3cret
routers:
  - name: r1
    project: demo
networks:
  - name: net1
    project: demo
    cidr: 10.90.1.0/24
    router: r1
instances:
  - name: vm1
    project: demo
    network: net1
    ip: 10.90.1.5
    user_data: |
      #cloud-config
      hostname: vm1
    public_keys: {default: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2eTestKeyForMdctl000000000000000000000000 demo"}
    meta: {role: web}
  - name: vm2
    project: demo
    network: net1
    ip: 10.90.1.6
`
