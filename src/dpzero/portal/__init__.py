"""The catalog portal at ``/portal``: search over TAP, a results table, plots, jobs.

The page is a single-page application written with Preact and htm (from the npm
package ``htm``, whose ``preact/standalone.module.js`` bundles Preact, its hooks and
htm in 13 kB). The built file is committed under ``static/vendor/`` and shipped as
package data: the portal then works offline and installing dpzero needs no Node.js
(``scripts/update-portal-vendor`` fetches it again from the npm registry).
"""

from dpzero.portal.handlers import portal_router

__all__ = ["portal_router"]
