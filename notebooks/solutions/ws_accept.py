import base64
import hashlib

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3: the same for every server


def accept(key):
    digest = hashlib.sha1((key + GUID).encode()).digest()  # 20 raw bytes, not hex
    return base64.b64encode(digest).decode()


print(accept("dGhlIHNhbXBsZSBub25jZQ=="))  # s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
check_accept(accept)
