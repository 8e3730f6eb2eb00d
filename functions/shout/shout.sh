#!/bin/sh
# shout: an exec-mode function. The event arrives on stdin; stdout is the response.
exec tr a-z A-Z
