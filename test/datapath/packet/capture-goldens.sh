#!/bin/bash
# How the frames in golden.ts were captured (run as root; needs iproute2, ethtool, tcpdump, nc,
# ping, python3). Three namespaces A - R - B joined by veth pairs; R forwards, its link to B has
# MTU 68 so it fragments and sends "fragmentation needed". Nothing leaves the namespaces.
# Output: ./a.txt (A's link) and ./b.txt (B's link) in `tcpdump -n -e -vv -xx` form.
set -u
P=pkt$$-
A=${P}a; R=${P}r; B=${P}b
OUT=$(pwd)
cleanup() { for n in $A $R $B; do ip netns del "$n" 2>/dev/null; done; }
trap cleanup EXIT
for n in $A $R $B; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip link add ${P}ar type veth peer name ${P}ra
ip link set ${P}ar netns $A; ip link set ${P}ra netns $R
ip link add ${P}rb type veth peer name ${P}br
ip link set ${P}rb netns $R; ip link set ${P}br netns $B
ip -n $A link set ${P}ar address 02:00:00:00:0a:01
ip -n $R link set ${P}ra address 02:00:00:00:0a:02
ip -n $R link set ${P}rb address 02:00:00:00:0b:02
ip -n $B link set ${P}br address 02:00:00:00:0b:01
# Real checksums in the capture: no offload.
for x in "$A ${P}ar" "$R ${P}ra" "$R ${P}rb" "$B ${P}br"; do
  set -- $x; ip netns exec "$1" ethtool -K "$2" tx off rx off >/dev/null 2>&1
done
ip netns exec $A sysctl -qw net.ipv6.conf.all.disable_ipv6=1
ip netns exec $R sysctl -qw net.ipv6.conf.all.disable_ipv6=1
ip -n $A addr add 10.1.0.1/24 dev ${P}ar; ip -n $A link set ${P}ar up
ip -n $R addr add 10.1.0.2/24 dev ${P}ra; ip -n $R link set ${P}ra up
ip -n $R addr add 10.2.0.2/24 dev ${P}rb; ip -n $R link set ${P}rb up mtu 68
ip -n $B addr add 10.2.0.1/24 dev ${P}br; ip -n $B link set ${P}br up mtu 68
ip -n $A route add default via 10.1.0.2
ip -n $B route add default via 10.2.0.2
ip netns exec $R sysctl -qw net.ipv4.ip_forward=1
sleep 1
ip netns exec $A tcpdump -i ${P}ar -n -U -w "$OUT/a.pcap" 2>/dev/null &
TD=$!
ip netns exec $B tcpdump -i ${P}br -n -U -w "$OUT/b.pcap" 2>/dev/null &
TDB=$!
sleep 1.5
ip netns exec $A ping -c1 -W1 10.1.0.2 >/dev/null                 # ARP, echo, echo reply
ip netns exec $R nc -l -p 8080 >/dev/null &
NCL=$!
sleep 0.3
echo hello | ip netns exec $A nc -q0 -w1 10.1.0.2 8080            # TCP with options and data
sleep 0.3
echo hi | ip netns exec $A nc -u -w1 10.1.0.2 5353                # UDP, port unreachable
ip netns exec $A nc -w1 10.1.0.2 81 </dev/null                    # SYN, RST
ip netns exec $A ping -c1 -W1 -s 72 -M do 10.2.0.1 >/dev/null     # fragmentation needed
ip netns exec $A ping -c1 -W1 -t 1 -s 8 10.2.0.1 >/dev/null       # time exceeded
ip netns exec $A ping -c1 -W1 -R -s 8 10.1.0.2 >/dev/null         # IP options (record route)
ip netns exec $A ping -c1 -W1 -s 60 -M dont 10.2.0.1 >/dev/null   # fragments (on B's link)
# No 8021q module in the container: write one tagged UDP frame with AF_PACKET instead.
ip netns exec $A python3 - ${P}ar <<'PY'
import socket, struct, sys
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
sip, dip = socket.inet_aton("10.100.0.1"), socket.inet_aton("10.100.0.2")
data = b"vlan"
udp = struct.pack("!HHHH", 40000, 9999, 8 + len(data), 0) + data
c = csum(sip + dip + struct.pack("!BBH", 0, 17, len(udp)) + udp) or 0xffff
udp = udp[:6] + struct.pack("!H", c) + udp[8:]
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0x1234, 0x4000, 64, 17, 0, sip, dip)
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
eth = bytes.fromhex("020000000a02020000000a01") + struct.pack("!HHH", 0x8100, (3 << 13) | 100, 0x0800)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
s.send(eth + ip + udp)
PY
sleep 1
kill $TD $TDB $NCL 2>/dev/null
wait $TD $TDB 2>/dev/null
tcpdump -r "$OUT/a.pcap" -n -e -vv -xx >"$OUT/a.txt" 2>/dev/null
tcpdump -r "$OUT/b.pcap" -n -e -vv -xx >"$OUT/b.txt" 2>/dev/null
rm -f "$OUT/a.pcap" "$OUT/b.pcap"
