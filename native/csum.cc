#include "csum.h"

namespace lvsio {

namespace {

constexpr uint8_t kProtoIpip = 4;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;

inline uint32_t Be16(const uint8_t* p) { return (uint32_t{p[0]} << 8) | p[1]; }

// One's-complement sum of 16-bit big-endian words (RFC 1071), unfolded.
uint64_t SumWords(const uint8_t* p, uint32_t n, uint64_t sum) {
  uint32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    sum += Be16(p + i) + Be16(p + i + 2) + Be16(p + i + 4) + Be16(p + i + 6);
  }
  for (; i + 1 < n; i += 2) sum += Be16(p + i);
  if (i < n) sum += uint32_t{p[i]} << 8;
  return sum;
}

uint16_t Fold(uint64_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// ip points at an IPv4 header with n bytes available after it (n may include link padding).
bool FinishIpv4(uint8_t* ip, uint32_t n, bool outer) {
  if (n < 20 || (ip[0] >> 4) != 4) return false;
  const uint32_t ihl = (ip[0] & 0x0f) * 4u;
  const uint32_t tot = Be16(ip + 2);
  if (ihl < 20 || tot < ihl || tot > n) return false;
  if (Be16(ip + 6) & 0x3fff) return false;  // a fragment: no offloaded checksum is possible
  uint8_t* l4 = ip + ihl;
  const uint32_t l4len = tot - ihl;
  const uint8_t proto = ip[9];
  if (proto == kProtoIpip && outer) return FinishIpv4(l4, l4len, false);
  uint32_t at;
  if (proto == kProtoTcp) {
    if (l4len < 20) return false;
    at = 16;
  } else if (proto == kProtoUdp) {
    if (l4len < 8) return false;
    at = 6;
  } else {
    return false;
  }
  l4[at] = 0;
  l4[at + 1] = 0;
  uint64_t sum = SumWords(ip + 12, 8, 0);  // saddr, daddr
  sum += proto;
  sum += l4len;
  sum = SumWords(l4, l4len, sum);
  uint16_t c = static_cast<uint16_t>(~Fold(sum));
  if (c == 0 && proto == kProtoUdp) c = 0xffff;  // 0 means "no checksum" in UDP (RFC 768)
  l4[at] = static_cast<uint8_t>(c >> 8);
  l4[at + 1] = static_cast<uint8_t>(c);
  return true;
}

}  // namespace

bool FinishL4Checksum(uint8_t* frame, uint32_t len) {
  if (len < 14) return false;
  uint32_t l3 = 14;
  uint32_t type = Be16(frame + 12);
  if (type == 0x8100 || type == 0x88a8) {
    if (len < 18) return false;
    type = Be16(frame + 16);
    l3 = 18;
  }
  if (type != 0x0800) return false;
  return FinishIpv4(frame + l3, len - l3, true);
}

}  // namespace lvsio
