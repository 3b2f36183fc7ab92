/*
 * guest: a tiny operating system for the QEMU tests.  It rewrites pages
 * FIRST..LAST of its RAM forever, in generations, with the pattern of
 * guestpage.h, and checks each page before it rewrites it: a snapshot of
 * the guest taken and restored (or RAM copied while it is stopped) shows
 * one cut of its writes, which guestcheck verifies offline, and the
 * guest itself counts every word it finds not as it left it.
 *
 *	qemu-system-x86_64 -accel tcg -m 64 -kernel guest.elf \
 *	    -nodefaults -display none -serial file:PATH \
 *	    [-append "first=512 last=16351"]
 *
 * For each generation G = 1, 2, ... and each page P in ascending order:
 * check that every word of P holds generation G - 1 (generation 0 is all
 * zero, as fresh RAM is), counting each word that does not as a
 * mismatch; then write generation G's pattern into P, word by word in
 * ascending order.  Every access is one 32-bit volatile load or store,
 * so an instant between two instructions is a cut at a word.
 *
 * Fresh RAM is not all zero: the firmware leaves its tables and heap in
 * some pages (SeaBIOS: around 48 MiB and in the top 8 KiB of a 64 MiB
 * guest).  So at boot the guest first clears FIRST..LAST: that is
 * generation 0, and from the start line on every instant is a cut.
 *
 * On COM1 (polled, no interrupts) it prints, in decimal,
 *	guest: start first=F last=L
 * once the range is clear, then
 *	guest: gen G page P writes W mismatches M
 * after every 2048th page written and at the end of every generation
 * (P the page just written, W the pages written since boot).
 *
 * Its whole state is in RAM and in the CPU: the counters below (in its
 * own .bss, below page FIRST) and the registers.  It takes no interrupt,
 * reads no clock and never stops, so a guest saved and restored at any
 * instruction goes on where it was and finds nothing amiss.
 */
#include <stdint.h>

#include "guestpage.h"

#define COM1			0x3f8
#define COM1_LSR		(COM1 + 5)
#define COM1_LSR_THRE		0x20	/* transmit holding register empty */
#define REPORT_EVERY		2048u	/* pages between two progress lines */

#define MULTIBOOT_INFO_MEMORY	0x00000001
#define MULTIBOOT_INFO_CMDLINE	0x00000004
#define MULTIBOOT_BOOT_MAGIC	0x2badb002

struct multiboot_info {
	uint32_t	 flags;
	uint32_t	 mem_lower;	/* KiB below 640 KiB */
	uint32_t	 mem_upper;	/* KiB above 1 MiB */
	uint32_t	 boot_device;
	uint32_t	 cmdline;	/* physical address of a C string */
};

void	guest_main(uint32_t, const struct multiboot_info *)
	    __attribute__((noreturn));

static void	guest_halt(const char *) __attribute__((noreturn));

extern char	 _end[];	/* guest.ld: the end of .bss */

/*
 * The counters, in memory after every page (volatile), so that a RAM
 * image shows them as the guest last left them.
 */
static volatile uint32_t	 guest_first, guest_last;
static volatile uint32_t	 guest_gen, guest_page;
static volatile uint64_t	 guest_writes, guest_mismatches;

static inline void
outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t
inb(uint16_t port)
{
	uint8_t	 v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static void
serial_putc(char c)
{
	while ((inb(COM1_LSR) & COM1_LSR_THRE) == 0)
		;
	outb(COM1, (uint8_t)c);
}

static void
serial_puts(const char *s)
{
	while (*s != '\0')
		serial_putc(*s++);
}

/*
 * A 64-bit number in decimal with 32-bit divisions only (no libgcc):
 * long division by 10 over four 16-bit digits, where each step's
 * dividend, remainder * 65536 + digit, fits in 32 bits.
 */
static void
serial_putu64(uint64_t v)
{
	uint32_t	 limb[4], rem;
	char		 buf[24];
	int		 i, n = 0, nonzero;

	for (i = 0; i < 4; i++)
		limb[i] = (uint32_t)(v >> (48 - 16 * i)) & 0xffff;
	do {
		rem = 0;
		nonzero = 0;
		for (i = 0; i < 4; i++) {
			uint32_t	 cur = (rem << 16) | limb[i];

			limb[i] = cur / 10;
			rem = cur % 10;
			nonzero |= limb[i] != 0;
		}
		buf[n++] = (char)('0' + rem);
	} while (nonzero);
	while (n > 0)
		serial_putc(buf[--n]);
}

static void
report_progress(void)
{
	serial_puts("guest: gen ");
	serial_putu64(guest_gen);
	serial_puts(" page ");
	serial_putu64(guest_page);
	serial_puts(" writes ");
	serial_putu64(guest_writes);
	serial_puts(" mismatches ");
	serial_putu64(guest_mismatches);
	serial_putc('\n');
}

/* The value of "NAME=digits" in the command line, or dflt. */
static uint32_t
cmdline_uint(const char *cmdline, const char *name, uint32_t dflt)
{
	const char	*s, *n;
	uint32_t	 v;

	if (cmdline == 0)
		return dflt;
	for (s = cmdline; *s != '\0'; s++) {
		if (s != cmdline && s[-1] != ' ')
			continue;
		for (n = name; *n != '\0' && *s == *n; n++, s++)
			;
		if (*n != '\0' || *s != '=') {
			if (*s == '\0')
				break;
			continue;
		}
		if (*++s < '0' || *s > '9')
			return dflt;
		for (v = 0; *s >= '0' && *s <= '9'; s++)
			v = v * 10 + (uint32_t)(*s - '0');
		return v;
	}
	return dflt;
}

static void
guest_halt(const char *why)
{
	serial_puts("guest: ");
	serial_puts(why);
	serial_putc('\n');
	for (;;)
		__asm__ volatile("cli; hlt");
}

/*
 * Read FIRST and LAST from the command line, bounded by the guest's own
 * end below and the top of RAM above, and clear the range (generation
 * 0).  The command line is read before any page is written: QEMU puts
 * the multiboot information just past the kernel, and it is not looked
 * at again.
 */
static void
range_setup(uint32_t magic, const struct multiboot_info *mbi)
{
	const char	*cmdline = 0;
	uint32_t	 lowest, highest = 0xffffffffu, page, w;

	if (magic == MULTIBOOT_BOOT_MAGIC) {
		if (mbi->flags & MULTIBOOT_INFO_CMDLINE)
			cmdline = (const char *)mbi->cmdline;
		if (mbi->flags & MULTIBOOT_INFO_MEMORY)
			highest = (1024 + mbi->mem_upper) / 4 - 1;
	}
	guest_first = cmdline_uint(cmdline, "first", GUESTPAGE_FIRST);
	guest_last = cmdline_uint(cmdline, "last", GUESTPAGE_LAST);
	lowest = ((uint32_t)_end + GUESTPAGE_SIZE - 1) / GUESTPAGE_SIZE;
	if (guest_first < lowest)
		guest_first = lowest;
	if (guest_last > highest)
		guest_last = highest;
	if (guest_last < guest_first)
		guest_halt("no pages to write: halted");
	for (page = guest_first; page <= guest_last; page++)
		for (w = 0; w < GUESTPAGE_WORDS; w++)
			((volatile uint32_t *)(page * GUESTPAGE_SIZE))[w] = 0;
	serial_puts("guest: start first=");
	serial_putu64(guest_first);
	serial_puts(" last=");
	serial_putu64(guest_last);
	serial_putc('\n');
}

/* Check page `page' against generation gen - 1, then write gen into it. */
static uint32_t
page_rewrite(uint32_t gen, uint32_t page)
{
	volatile uint32_t	*p;
	uint32_t		 w, bad = 0;

	p = (volatile uint32_t *)(page * GUESTPAGE_SIZE);
	for (w = 0; w < GUESTPAGE_WORDS; w++)
		if (p[w] != guestpage_word(gen - 1, page, w))
			bad++;
	for (w = 0; w < GUESTPAGE_WORDS; w++)
		p[w] = guestpage_word(gen, page, w);
	return bad;
}

void
guest_main(uint32_t magic, const struct multiboot_info *mbi)
{
	uint32_t	 page;

	outb(COM1 + 1, 0);	/* no UART interrupts */
	range_setup(magic, mbi);
	for (guest_gen = 1; guest_gen <= GUESTPAGE_GEN_MAX; guest_gen++) {
		for (page = guest_first; page <= guest_last; page++) {
			guest_page = page;
			guest_mismatches += page_rewrite(guest_gen, page);
			guest_writes++;
			if (((uint32_t)guest_writes % REPORT_EVERY) == 0)
				report_progress();
		}
		if (((uint32_t)guest_writes % REPORT_EVERY) != 0)
			report_progress();
	}
	guest_halt("the last generation is written: halted");
}
