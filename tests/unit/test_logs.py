import io
import json
import logging

from monitoring.logs import JsonFormatter


def test_log_lines_are_json_with_extra_fields_as_keys():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("symbol rejected", extra={"symbol": "BAD,SYM", "count": 3, "obj": object()})
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["msg"] == "symbol rejected" and line["level"] == "WARNING"
    assert line["symbol"] == "BAD,SYM" and line["count"] == 3
    assert line["obj"].startswith("<object")
