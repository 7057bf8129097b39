// Runs the reference Bluesky PDS (@atproto/pds) configured by its PDS_* environment variables (set by
// tests/support/pds_server.py) until SIGTERM or SIGINT, then stops it cleanly so that it can be started again on the
// same data folder. Prints one line when it listens.
import { importInstalled } from './resolve_install.mjs'

const { PDS } = await importInstalled('@atproto/pds')

// PDS.run listens for SIGTERM/SIGINT itself and closes the server and its databases before returning.
await PDS.run({
  onStarted: () => console.log(`pds ready on port ${process.env.PDS_PORT}`),
})
process.exit(0)
