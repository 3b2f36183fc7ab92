/*
 * qmp_capabilities: end capabilities negotiation.  The dispatcher marks
 * the connection negotiated when this returns (CMD_BEFORE_NEGOTIATION), so
 * from then on it may run every other command and receives events.  snapd
 * offers no optional capabilities yet, so there is nothing to enable.
 */
#include "cmd.h"

static enum cmd_retval
cmd_capabilities_exec(struct cmd_ctx *ctx)
{
	ctx->ret = NULL;
	return CMD_RETURN;
}

const struct cmd_entry cmd_capabilities_entry = {
	.name = "qmp_capabilities",
	.flags = CMD_BEFORE_NEGOTIATION,
	.exec = cmd_capabilities_exec,
};
