/*
 * qmp_capabilities: end capabilities negotiation.  The dispatcher marks
 * the connection negotiated when this returns (CMD_BEFORE_NEGOTIATION), so
 * from then on it may run every other command and receives events.  snapd
 * offers no optional capabilities yet, so there is nothing to enable.
 */
#include "cmd.h"

enum cmd_retval
cmd_capabilities_exec(struct cmd_ctx *ctx)
{
	ctx->ret = NULL;
	return CMD_RETURN;
}
