/*
 * The test guest's entry: a multiboot (v1) header, so that QEMU's
 * -kernel loads guest.elf at 1 MiB and enters _start in 32-bit protected
 * mode with paging off (eax = the bootloader's magic, ebx = the physical
 * address of the multiboot information).  _start keeps interrupts off
 * for good (the guest needs no timer and no device interrupt), clears
 * .bss, moves onto its own stack and calls guest_main, which never
 * returns.
 */
#define MULTIBOOT_MAGIC		0x1badb002
#define MULTIBOOT_FLAGS		0x00000003	/* modules page-aligned, memory info */

	.section .multiboot, "a"
	.align	4
	.long	MULTIBOOT_MAGIC
	.long	MULTIBOOT_FLAGS
	.long	-(MULTIBOOT_MAGIC + MULTIBOOT_FLAGS)

	.text
	.globl	_start
_start:
	cli
	cld
	movl	$stack_top, %esp
	movl	%eax, %esi
	/* Fresh RAM is zero, but say so: the counters must start at 0. */
	movl	$__bss_start, %edi
	movl	$__bss_end, %ecx
	subl	%edi, %ecx
	shrl	$2, %ecx
	xorl	%eax, %eax
	rep stosl
	pushl	%ebx
	pushl	%esi
	call	guest_main
1:	hlt
	jmp	1b

	.bss
	.align	16
stack:
	.skip	16384
stack_top:

	.section .note.GNU-stack, "", @progbits
