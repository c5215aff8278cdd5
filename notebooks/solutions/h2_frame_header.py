def read(header):
    length = int.from_bytes(header[0:3], "big")  # 24 bits
    kind, flags = header[3], header[4]  # a byte each
    stream_id = int.from_bytes(header[5:9], "big") & 0x7FFFFFFF  # drop the reserved bit
    return length, kind, flags, stream_id


check_frame_header(read)
