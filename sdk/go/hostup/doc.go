// Run commands in HostUp VPSes through the QEMU guest agent: probe whether command execution is available, start a command, and read its output by pid. A native Pulumi provider (the `hostup` plugin, for every Pulumi language including YAML) and a Python package with zero-install dynamic resources, on a typed REST client for HostUp's public API v2.
package hostup
