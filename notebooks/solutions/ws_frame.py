import json


def make_frame(text):
    return json.dumps({"message": text})  # json.dumps escapes quotes, backslashes and newlines


check_frame(make_frame, server.url)
