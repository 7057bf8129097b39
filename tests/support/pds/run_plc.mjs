// Runs a DID PLC directory in memory on 127.0.0.1:PLC_PORT (what @atproto/dev-env does) until SIGTERM or SIGINT.
// It is a process of its own so that the PDS can be stopped and started again while the DIDs it created stay known;
// when this process ends, the DIDs are gone and the PDS data that refers to them must be wiped.
import { importInstalled } from './resolve_install.mjs'

const port = Number(process.env.PLC_PORT)
if (!Number.isInteger(port) || port <= 0) {
  console.error('run_plc.mjs: PLC_PORT must be a port number')
  process.exit(2)
}

const plc = (await importInstalled('@did-plc/server')).default
const server = plc.PlcServer.create({ db: plc.Database.mock(), port })
await server.start()
console.log(`plc ready on port ${port}`)

let stopping = false
const stop = async () => {
  if (stopping) return
  stopping = true
  await server.destroy()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
