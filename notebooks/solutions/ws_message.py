import json


def make_message(text):
    return json.dumps({"message": text})  # json.dumps escapes quotes, backslashes and newlines


check_message(make_message, server.url)
