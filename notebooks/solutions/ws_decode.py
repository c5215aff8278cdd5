from transport_demo.lab.exercises.websocket import FRAME_TO_DECODE

frame = FRAME_TO_DECODE  # 81 8b 5e 1f a2 07 1c 70 cc 6d 31 6a d0 27 bc 83 31
b0, b1 = frame[0], frame[1]
length = b1 & 0x7F  # 11: under 126, so the 7-bit form: no extended length bytes
key = frame[2:6]  # MASK is set, so the 4-byte key comes next
payload = bytes(byte ^ key[i % 4] for i, byte in enumerate(frame[6 : 6 + length]))
answer = {
    "fin": bool(b0 & 0x80),  # 1: the whole message is in this frame
    "opcode": b0 & 0x0F,  # 1: text
    "masked": bool(b1 & 0x80),  # 1: so it came from a client
    "length": length,  # bytes: "✓" alone is 3 of them
    "mask_key": key,
    "text": payload.decode("utf-8"),
}
check_decoded(answer)
