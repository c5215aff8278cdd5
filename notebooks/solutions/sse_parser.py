# A hand parser, for teaching (the clients use httpx-sse).
def parse(text):
    events, block, data = [], {}, []
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for line in lines[:-1]:  # the last piece has no line end yet: not a line
        if line == "":  # a blank line dispatches the block
            if data:
                block["data"] = "\n".join(data)
            if block:
                events.append(block)
            block, data = {}, []
            continue
        if line.startswith(":"):  # a comment
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data.append(value)
        elif name in ("id", "event"):
            block[name] = value
        elif name == "retry" and value.isdigit():
            block["retry"] = int(value)
    return events


check_sse_parser(parse)
