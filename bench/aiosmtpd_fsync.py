#!/usr/bin/env python3
"""The do-it-yourself baseline: aiosmtpd with a handler that writes each
message to a file and fsyncs it (and its directory) before answering 250.
usage: aiosmtpd_fsync.py PORT DIR"""
import asyncio, os, sys, uuid
from aiosmtpd.controller import Controller


class FsyncHandler:
    def __init__(self, directory):
        self.dir = directory
        self.dirfd = os.open(directory, os.O_RDONLY)

    async def handle_DATA(self, server, session, envelope):
        path = os.path.join(self.dir, uuid.uuid4().hex)
        with open(path + ".tmp", "wb") as f:
            f.write(envelope.original_content)
            f.flush()
            os.fsync(f.fileno())
        os.rename(path + ".tmp", path)
        os.fsync(self.dirfd)
        return "250 OK"


port, directory = int(sys.argv[1]), sys.argv[2]
controller = Controller(FsyncHandler(directory), hostname="127.0.0.1", port=port, data_size_limit=50 * 1024 * 1024)
controller.start()
print("listening", port, flush=True)
try:
    asyncio.get_event_loop().run_forever()
except KeyboardInterrupt:
    pass
