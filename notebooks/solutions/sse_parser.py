# A hand parser, for teaching (the clients use httpx-sse). The network hands it the body in
# chunks cut anywhere: inside a line, inside a UTF-8 character, between a CR and its LF.
import codecs
import re


def parse(chunks):
    decoder = codecs.getincrementaldecoder("utf-8")("replace")  # keeps half a character
    pending, after_cr, block, data = "", False, {}, []
    for chunk in chunks:
        text = decoder.decode(chunk)
        if text:
            if after_cr and text.startswith("\n"):  # the LF of a CRLF whose CR came last time
                text = text[1:]
            after_cr = text.endswith("\r")  # that CR ended its line already: don't wait
        *lines, pending = re.split(r"\r\n|\r|\n", pending + text)  # the last piece: no end yet
        for line in lines:
            if line == "":  # a blank line dispatches the block, at once
                if data:
                    block["data"] = "\n".join(data)
                if block:
                    yield block
                block, data = {}, []
            elif not line.startswith(":"):  # a comment is skipped
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "data":
                    data.append(value)
                elif name in ("id", "event"):
                    block[name] = value
                elif name == "retry" and value.isascii() and value.isdigit():
                    block["retry"] = int(value)


check_sse_parser(parse)
