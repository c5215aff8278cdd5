def read(data):
    length = 1 << (data[0] >> 6)  # the top two bits: 00 → 1, 01 → 2, 10 → 4, 11 → 8 bytes
    value = int.from_bytes(data[:length], "big")
    value &= (1 << (8 * length - 2)) - 1  # drop the two length bits
    return value, length


check_varint(read)
