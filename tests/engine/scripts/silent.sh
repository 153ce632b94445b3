#!/bin/sh
# Test command: succeeds without printing anything.
exit 0
