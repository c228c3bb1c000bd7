/* control: the node's local control socket (unix, mode 0600, under the
 * state directory). One request per connection: "METHOD /path?query\n"
 * then a YAML body until end of input; the answer is "STATUS\n" then YAML.
 * mailnodectl and the SNMP subagent speak it. */
#ifndef MAILNODE_CONTROL_H
#define MAILNODE_CONTROL_H

#include <stddef.h>

#define CONTROL_MAX_REQUEST	(16 * 1024 * 1024)

int	 control_start(const char *path, char *err, size_t errlen);
void	 control_stop(void);

#endif
