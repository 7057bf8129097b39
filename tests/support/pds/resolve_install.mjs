// Loads a package from the cached PDS install (tests/support/ensure_pds.sh), not from beside this script: the
// scripts live in the repository, the node_modules in the cache folder named by PDS_INSTALL_DIR.
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

export async function importInstalled(name) {
  const installDir = process.env.PDS_INSTALL_DIR
  if (!installDir) {
    throw new Error('PDS_INSTALL_DIR is not set: it names the folder tests/support/ensure_pds.sh installed into')
  }
  const require = createRequire(join(installDir, 'app', 'package.json'))
  return import(pathToFileURL(require.resolve(name)).href)
}
