#!/bin/sh
# sleeper: an exec-mode function for timeout tests. Sleeps SLEEP_SECONDS (default 30),
# then echoes the event back.
sleep "${SLEEP_SECONDS:-30}"
exec cat
